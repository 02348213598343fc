"""/api/v1/… routes."""

from __future__ import annotations

from django.urls import path, register_converter

from accounts.apis import AccountDetailApi, AccountListCreateApi, AccountPrimaryApi
from accounts.auth_apis import TokenObtainApi, TokenRefreshApi
from accounts.device_apis import DeviceKeyListCreateApi, DeviceKeyRevokeApi
from config.api import AnyIdConverter
from guards.apis import GuardsApi, ManualCloseApi, PlatformStateApi
from notifications.apis import AlertPreferencesApi
from notifications.auth_apis import TelegramAuthApi
from pipeline.apis import DeviceSyncApi
from positions.apis import (
    AccountEquityApi,
    AccountPositionsApi,
    AccountSummaryApi,
    PrimaryPositionsApi,
)
from reconciliation.apis import ExpectedTradeCreateApi, UserReconciliationApi
from risk.apis import PositionSizeApi, RiskConfigApi, RiskConfigHistoryApi

register_converter(AnyIdConverter, "anyid")

urlpatterns = [
    path("auth/token", TokenObtainApi.as_view(), name="token"),
    path("auth/token/refresh", TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/telegram", TelegramAuthApi.as_view(), name="token-telegram"),
    path("accounts", AccountListCreateApi.as_view(), name="accounts"),
    path("accounts/<anyid:account_id>", AccountDetailApi.as_view(), name="account"),
    path("accounts/<anyid:account_id>/primary", AccountPrimaryApi.as_view(),
         name="account-primary"),
    path("accounts/<anyid:account_id>/positions", AccountPositionsApi.as_view(),
         name="account-positions"),
    path("accounts/<anyid:account_id>/summary", AccountSummaryApi.as_view(),
         name="account-summary"),
    path("accounts/<anyid:account_id>/equity", AccountEquityApi.as_view(),
         name="account-equity"),
    path("positions", PrimaryPositionsApi.as_view(), name="positions"),
    path("trades", ExpectedTradeCreateApi.as_view(), name="trades"),
    path("alerts/preferences", AlertPreferencesApi.as_view(), name="alert-preferences"),
    path("guards", GuardsApi.as_view(), name="guards"),
    path("guards/manual-close", ManualCloseApi.as_view(), name="manual-close"),
    path("guards/platform", PlatformStateApi.as_view(), name="platform-state"),
    path("devices", DeviceKeyListCreateApi.as_view(), name="devices"),
    path("devices/sync", DeviceSyncApi.as_view(), name="device-sync"),
    path("devices/<anyid:key_id>", DeviceKeyRevokeApi.as_view(), name="device"),
    path("risk/config", RiskConfigApi.as_view(), name="risk-config"),
    path("risk/config/history", RiskConfigHistoryApi.as_view(), name="risk-config-history"),
    path("risk/position-size", PositionSizeApi.as_view(), name="position-size"),
    path("reconciliation/<anyid:user_id>", UserReconciliationApi.as_view(),
         name="reconciliation"),
]
