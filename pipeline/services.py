"""The pipeline's joints: a good read flows on to reconciliation, then the guard.

Every function here composes the steps; none holds a rule of its own. See the package
docstring (``pipeline/__init__.py``) for the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import DeviceKey
from guards.services import accounts_guard
from guards.services import episodes as guard_episodes
from positions import push
from positions import services as sync
from reconciliation.services import accounts_reconcile


@dataclass(frozen=True, slots=True)
class AfterRead:
    """What the steps after a read did: divergences opened, level transitions, episodes."""

    source: str
    accounts: int
    divergences: int
    transitions: int
    episodes: list[int]


def after_read(*, account_ids: list[int], source: str) -> AfterRead:
    """Steps 3 and 4 for accounts whose read (``source``: "pull", "push" or "recheck") has
    just been applied successfully: reconciliation, then the guard on those fresh figures.
    Never call it for a failed or stale read: those accounts are "unknown"."""
    if not account_ids:
        return AfterRead(source, 0, 0, 0, [])
    reconciled = accounts_reconcile(account_ids=account_ids)
    guarded = accounts_guard(account_ids=account_ids)
    return AfterRead(source=source, accounts=len(account_ids),
                     divergences=reconciled.opened, transitions=guarded.transitions,
                     episodes=guarded.episodes)


def accounts_sync(*, account_ids: list[int], gateway_for: sync.GatewayFactory | None = None,
                  deadline: float = sync.BATCH_FETCH_DEADLINE_SECONDS,
                  source: str = "pull", priority: bool = False) -> sync.SyncOutcome:
    """Read and apply a batch (``positions.services.accounts_sync``; ``priority``: ahead
    of routine reads on each terminal), then ``after_read`` for the accounts read
    successfully. Same arguments and answer as the sync."""
    outcome = sync.accounts_sync(account_ids=account_ids, gateway_for=gateway_for,
                                 deadline=deadline, priority=priority)
    after_read(account_ids=outcome.synced, source=source)
    return outcome


def device_push(*, key: DeviceKey, snapshot: dict[str, Any]) -> dict[str, Any]:
    """An EA's verified, validated snapshot (``positions.push``), then ``after_read``.
    Raises ApplicationError as ``positions.push.device_snapshot_apply``."""
    answer = push.device_snapshot_apply(key=key, snapshot=snapshot)
    if answer["status"] == "applied":
        after_read(account_ids=[answer["account_id"]], source="push")
    return answer


def liquidation_recheck(*, episode_id: int) -> str:
    """The guard's re-check, reading fresh through the whole pipeline (a priority read)."""
    return guard_episodes.liquidation_recheck(
        episode_id=episode_id,
        read=lambda ids: accounts_sync(account_ids=ids, source="recheck"))
