"""Writes on members and trading accounts."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.crypto import credentials_encrypt, credentials_rotate
from accounts.models import TradingAccount, User


@transaction.atomic
def trading_account_create(*, user: User, broker: str, broker_name: str, server: str,
                           login: str, password: str, read_only: bool = False,
                           cadence_seconds: int | None = None) -> TradingAccount:
    """Store a linked account with its password encrypted; due for sync at once.

    The member's first account becomes primary. Raises IntegrityError if the same
    (broker, server, login) is already linked.
    """
    from django.conf import settings

    has_primary = TradingAccount.objects.filter(user=user, is_primary=True).exists()
    return TradingAccount.objects.create(
        user=user,
        broker=broker,
        broker_name=broker_name,
        server=server,
        login=str(login),
        is_primary=not has_primary,
        credentials_encrypted=credentials_encrypt(password=password),
        credentials_read_only=read_only,
        sync_cadence_seconds=cadence_seconds or settings.SYNC_DEFAULT_CADENCE_SECONDS,
        next_sync_at=timezone.now(),
    )


def trading_account_credentials_rotate() -> int:
    """Re-encrypt every account's credentials under the newest key. Returns the count."""
    rotated = 0
    for account in TradingAccount.objects.only("id", "credentials_encrypted").iterator():
        token = credentials_rotate(account.credentials_encrypted)
        if token != account.credentials_encrypted:
            TradingAccount.objects.filter(pk=account.pk).update(credentials_encrypted=token)
            rotated += 1
    return rotated
