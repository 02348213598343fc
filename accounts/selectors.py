"""Reads of accounts that every app may use: the sync freshness the API shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts.models import TradingAccount


@dataclass(frozen=True, slots=True)
class SyncView:
    """What the API says about freshness: healthy / stale / error / pending, with age."""

    status: str
    age_seconds: float | None
    last_synced_at: datetime | None
    error_code: str
    error_message: str


def account_sync_view(account: TradingAccount, *, now: datetime | None = None) -> SyncView:
    """The account's sync status as the API shows it.

    An answer older than ``ACCOUNT_CACHE_TTL_SECONDS`` is *stale* whatever the stored
    status says, so a stopped worker can never make old figures look live.
    """
    now = now or timezone.now()
    age = None if account.last_synced_at is None else (now - account.last_synced_at)
    status = account.sync_status
    if status == TradingAccount.SyncStatus.HEALTHY and (
        age is None or age.total_seconds() > settings.ACCOUNT_CACHE_TTL_SECONDS
    ):
        status = TradingAccount.SyncStatus.STALE
    return SyncView(
        status=status,
        age_seconds=None if age is None else round(age.total_seconds(), 1),
        last_synced_at=account.last_synced_at,
        error_code=account.sync_error_code,
        error_message=account.sync_error_message,
    )
