"""What a member may see of the guards, and what only the owner may do: the one place
these rules live.

- A member sees the guards of their own active accounts; the owner sees every active one.
- Every member reads the platform state (the kill switch); only the owner sets it
  (``config.permissions.IsOwner`` on the view, 403 ``forbidden``).
- A member closes by hand only their own positions (``positions.access``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import TradingAccount


def accounts_guarded_for(user: Any) -> QuerySet[TradingAccount]:
    """The active accounts whose guards ``user`` sees, by id."""
    accounts = TradingAccount.objects.filter(is_active=True).order_by("pk")
    if user.is_owner:
        return accounts
    return accounts.filter(user=user)
