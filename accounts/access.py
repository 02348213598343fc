"""Who may see and change which trading accounts and device keys: the one place these rules
live.

- A member sees and changes only their own linked accounts.
- The owner may also *read* any member's account (support); changes stay the member's.
- A device key is a credential: only the member whose account it signs for lists or
  revokes it (the owner too sees only their own).
- Anything else answers 404, exactly like a missing id, so ids cannot be probed.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404

from accounts.models import DeviceKey, TradingAccount, User

RowT = TypeVar("RowT", bound=Model)


def accounts_readable_by(user: User) -> QuerySet[TradingAccount]:
    # the API never shows credentials or lease fields: leave them in the database
    accounts = TradingAccount.objects.filter(is_active=True).defer(
        "credentials_encrypted", "sync_lease_until", "sync_lease_token")
    if user.is_owner:
        return accounts
    return accounts.filter(user=user)


def accounts_writable_by(user: User) -> QuerySet[TradingAccount]:
    return TradingAccount.objects.filter(is_active=True, user=user)


def accounts_listed_for(user: User) -> QuerySet[TradingAccount]:
    """The user's own linked accounts, primary first, then oldest first (the owner's list
    is theirs too: other members' accounts are read one id at a time)."""
    return TradingAccount.objects.filter(user=user, is_active=True).order_by(
        "-is_primary", "created_at")


def account_readable(user: User, account_id: int) -> TradingAccount:
    """One account ``user`` may read (credentials deferred). Raises Http404 otherwise."""
    return _one_or_404(accounts_readable_by(user), account_id)


def account_writable(user: User, account_id: int) -> TradingAccount:
    """One of ``user``'s own active accounts. Raises Http404 otherwise."""
    return _one_or_404(accounts_writable_by(user), account_id)


def primary_account_of(user: User) -> TradingAccount:
    """``user``'s own primary account. Raises Http404 when they have none."""
    account = accounts_writable_by(user).filter(is_primary=True).first()
    if account is None:
        raise Http404
    return account


def device_keys_of(user: User) -> QuerySet[DeviceKey]:
    """The keys of ``user``'s own accounts, revoked ones included."""
    return DeviceKey.objects.filter(account__user=user)


def device_key_revocable(user: User, key_id: int) -> DeviceKey:
    """One key (by its row id) of ``user``'s own accounts. Raises Http404 otherwise."""
    return _one_or_404(device_keys_of(user), key_id)


def _one_or_404(rows: QuerySet[RowT], pk: int) -> RowT:
    row = rows.filter(pk=pk).first()
    if row is None:
        raise Http404
    return row
