"""Who may register expected trades and read whose divergences: the one place these rules
live.

- Expected trades are registered by the owner or the platform's execution service
  (``Authorization: Service <token>``), on any active account; a member may not.
- A member reads only their own reconciliation; the owner reads anyone's.
- Anything else answers 404, exactly like a missing id.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from rest_framework import permissions
from rest_framework.request import Request

from accounts.models import TradingAccount, User


class IsOwnerOrService(permissions.BasePermission):
    """The owner or the execution service (``config.service_auth.ServicePrincipal``);
    anyone else 403."""

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        return bool(getattr(user, "is_service", False) or getattr(user, "is_owner", False))


def expected_trade_account(account_id: int) -> TradingAccount:
    """The active account an expected trade is registered on (the caller passed
    ``IsOwnerOrService``). Raises Http404 for a missing or unlinked one."""
    account = TradingAccount.objects.filter(pk=account_id, is_active=True).first()
    if account is None:
        raise Http404
    return account


def users_reconciliation_readable_by(user: Any) -> QuerySet[User]:
    """The users whose reconciliation ``user`` may read: everyone for the owner, else
    themself."""
    if user.is_owner:
        return User.objects.all()
    return User.objects.filter(pk=user.pk)


def user_reconciliation_readable(user: Any, user_id: int) -> User:
    """The member ``user_id`` if ``user`` may read their reconciliation. Raises Http404
    otherwise (another member's id answers like a missing one)."""
    wanted = users_reconciliation_readable_by(user).filter(pk=user_id).first()
    if wanted is None:
        raise Http404
    return wanted
