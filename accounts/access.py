"""Who may see and change which trading accounts: the one place these rules live.

- A member sees and changes only their own linked accounts.
- The owner may also *read* any member's account (support); changes stay the member's.
- Anything else answers 404, exactly like a missing id, so ids cannot be probed.
"""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import TradingAccount, User


def accounts_readable_by(user: User) -> QuerySet[TradingAccount]:
    accounts = TradingAccount.objects.filter(is_active=True).select_related("user")
    if user.is_owner:
        return accounts
    return accounts.filter(user=user)


def accounts_writable_by(user: User) -> QuerySet[TradingAccount]:
    return TradingAccount.objects.filter(is_active=True, user=user)
