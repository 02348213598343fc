"""Risk reads."""

from __future__ import annotations

from django.db.models import Subquery

from accounts import access
from accounts.models import TradingAccount, User
from guards.models import PlatformState


def account_for_sizing(*, user: User, account_id: int) -> TradingAccount | None:
    """One account ``user`` may read (``accounts.access``), ready for sizing in ONE query:
    with its credentials (the gateway logs in with them; the read-only default defers
    them), its guard state (``guard_state``, joined: whether a period rule stopped new
    trades) and the platform's kill-switch state (annotated ``platform_state``; ``None``
    before the kill switch's row exists). ``None`` when there is no such account for
    ``user``."""
    platform = PlatformState.objects.filter(pk=1).values("state")[:1]
    return (access.accounts_readable_by(user).defer(None).select_related("guard_state")
            .annotate(platform_state=Subquery(platform)).filter(pk=account_id).first())
