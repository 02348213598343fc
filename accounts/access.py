"""Who may see and change which trading accounts: the one place these rules live.

- A member sees and changes only their own linked accounts.
- The owner may also *read* any member's account (support); changes stay the member's.
- Anything else answers 404, exactly like a missing id, so ids cannot be probed.
"""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import TradingAccount, User


def accounts_readable_by(user: User) -> QuerySet[TradingAccount]:
    # the API never shows credentials or lease fields: leave them in the database
    accounts = TradingAccount.objects.filter(is_active=True).defer(
        "credentials_encrypted", "sync_lease_until", "sync_lease_token")
    if user.is_owner:
        return accounts
    return accounts.filter(user=user)


def accounts_writable_by(user: User) -> QuerySet[TradingAccount]:
    return TradingAccount.objects.filter(is_active=True, user=user)
