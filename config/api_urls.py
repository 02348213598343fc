"""/api/v1/… routes."""

from __future__ import annotations

from django.urls import path, register_converter
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.apis import AccountDetailApi, AccountListCreateApi, AccountPrimaryApi
from config.api import AnyIdConverter
from positions.apis import (
    AccountEquityApi,
    AccountPositionsApi,
    AccountSummaryApi,
    PrimaryPositionsApi,
)
from reconciliation.apis import ExpectedTradeCreateApi, UserReconciliationApi

register_converter(AnyIdConverter, "anyid")

urlpatterns = [
    path("auth/token", TokenObtainPairView.as_view(), name="token"),
    path("auth/token/refresh", TokenRefreshView.as_view(), name="token-refresh"),
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
    path("reconciliation/<anyid:user_id>", UserReconciliationApi.as_view(),
         name="reconciliation"),
]
