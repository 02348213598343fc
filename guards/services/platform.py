"""The kill switch: ACTIVE / REDUCING / HALTED, stored in the database and audited, and
the per-account trading block the period rules set."""


from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import TradingAccount
from config.errors import ApplicationError
from guards.models import (
    AccountGuardState,
    PlatformState,
    PlatformStateChange,
)


def platform_state_get() -> str:
    """ACTIVE / REDUCING / HALTED, from the database (it survives restarts)."""
    row, _ = PlatformState.objects.get_or_create(pk=1)
    return row.state


def platform_is_halted() -> bool:
    """True while the kill switch is HALTED: only the guards close positions."""
    return platform_state_get() == PlatformState.State.HALTED


def platform_is_active() -> bool:
    """True while the kill switch is ACTIVE: new trades may be registered and sized."""
    return platform_state_get() == PlatformState.State.ACTIVE


@transaction.atomic
def platform_state_set(*, state: str, changed_by: Any, reason: str = "") -> PlatformState:
    if state not in PlatformState.State.values:
        raise ApplicationError(f"state must be one of {PlatformState.State.values}",
                               code="invalid", status_code=422, detail={"field": "state"})
    PlatformState.objects.get_or_create(pk=1)
    row = PlatformState.objects.select_for_update().get(pk=1)
    previous = row.state
    row.state, row.reason, row.changed_by = state, reason[:200], changed_by
    row.save()
    PlatformStateChange.objects.create(previous=previous, new=state, reason=reason[:200],
                                       changed_by=changed_by, changed_at=timezone.now())
    return row


def account_trading_blocked(account: TradingAccount) -> bool:
    return AccountGuardState.objects.filter(account=account, trading_blocked=True).exists()
