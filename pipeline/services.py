"""The pipeline's joints: a good read flows on to reconciliation, then the guard.

Every function here composes the steps; none holds a rule of its own. See the package
docstring (``pipeline/__init__.py``) for the map.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from accounts.gateways import terminal_quotes
from accounts.models import DeviceKey, Terminal
from accounts.terminals import terminal_priority_done, terminal_priority_request
from brokers.errors import BrokerError
from brokers.gateway import Quote
from guards.services import accounts_guard
from guards.services import episodes as guard_episodes
from positions import push
from positions import services as sync
from reconciliation.services import accounts_reconcile
from risk import marking
from risk.symbols import symbol_spec_cache_invalidate

logger = logging.getLogger(__name__)
#: a quote call that takes longer is abandoned for this pass (the next is 1 s away)
MTM_QUOTE_TIMEOUT_SECONDS = 2.0
#: a stored price (a pulled read's or an EA push's) this recent counts as a quote
MTM_STORED_PRICE_MAX_AGE_SECONDS = 5.0


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
    marking.estimate_errors_observe(account_ids=account_ids)
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
    # the batch is committed: sizing must not use a changed specification's cached copy
    for server, symbol in outcome.specs_changed:
        symbol_spec_cache_invalidate(server, symbol)
    after_read(account_ids=outcome.synced, source=source)
    return outcome


def _quotes(symbols: set[str]) -> dict[str, Quote]:
    """The latest quote of each symbol from the healthy terminals (fastest first; each
    asked only for what the ones before it did not have), then stored prices of the last
    few seconds (pulled or pushed) for the rest. A terminal that does not answer is
    skipped: its accounts' estimates may turn unknown, never wrong."""
    terminals: list[Terminal | None] = list(
        Terminal.objects.filter(enabled=True, kind=Terminal.Kind.MT5,
                                consecutive_failures__lt=settings.TERMINAL_FAILOVER_FAILURES)
        .order_by(F("latency_ms").asc(nulls_last=True), "id")) or [None]
    quotes: dict[str, Quote] = {}
    for terminal in terminals:
        missing = symbols - quotes.keys()
        if not missing:
            break
        try:
            quotes.update(terminal_quotes(terminal, missing,
                                          timeout_seconds=MTM_QUOTE_TIMEOUT_SECONDS))
        except BrokerError as exc:
            logger.warning("mark-to-market: no quotes from %s (%s)", terminal, exc.code)
    since = timezone.now() - timedelta(seconds=MTM_STORED_PRICE_MAX_AGE_SECONDS)
    missing = symbols - quotes.keys()
    if missing:
        quotes.update(marking.stored_quotes(symbols=missing, since=since))
    return quotes


def mark_to_market(*, enqueue: Callable[[list[int], int | None, str], object]
                   ) -> marking.MarkPass:
    """The mark-to-market trigger, one pass: quotes (``_quotes``), every open account's
    equity estimated set-based (``risk.marking``), and a **priority read** for each
    account at or beyond warning or within ``MTM_NEAR_CRITICAL_POINTS`` of critical,
    never while its last ask is unanswered, at most once per ``MTM_PRIORITY_SECONDS``,
    and at most ``MTM_PRIORITY_BATCH`` per terminal per pass: routine reads of its terminal are held
    back (``accounts.terminals.terminal_priority_request``) and ``enqueue(account ids,
    terminal id, stamp)`` is called once per terminal (a batch never mixes terminals).
    Writes only the estimates: **an estimate never closes anything**."""
    inputs = marking.mark_inputs_load()
    if not inputs.positions:
        return marking.MarkPass(estimates={}, priority={})
    quotes = _quotes(inputs.symbols_wanted())
    now = timezone.now()
    result = marking.marks_apply(
        inputs=inputs, quotes=quotes, now=now,
        near_critical_points=Decimal(str(settings.MTM_NEAR_CRITICAL_POINTS)),
        repeat_seconds=settings.MTM_PRIORITY_SECONDS,
        answer_seconds=settings.MTM_PRIORITY_ANSWER_SECONDS,
        batch=settings.MTM_PRIORITY_BATCH)
    for terminal_id, account_ids in result.priority.items():
        stamp = terminal_priority_request(
            terminal_ids=[] if terminal_id is None else [terminal_id],
            seconds=settings.MTM_PRIORITY_SECONDS)
        enqueue(account_ids, terminal_id, stamp.isoformat())
    # stored after the reads are queued, so they do not wait for the upsert; a pass
    # running twice at once may ask a read twice, which is harmless
    marking.marks_store(marks=result, now=now)
    return result


def accounts_priority_read(*, account_ids: list[int], terminal_id: int | None,
                           stamp: datetime) -> sync.SyncOutcome:
    """A priority read asked by ``mark_to_market``: a fresh read of ``account_ids`` through
    the whole pipeline (``accounts_sync``: apply, reconcile, guard: the only path that
    may close), served by the terminal before routine reads; then routine reads are let in
    again (unless a newer priority request came)."""
    try:
        return accounts_sync(account_ids=account_ids, source="priority", priority=True)
    finally:
        if terminal_id is not None:
            terminal_priority_done(terminal_ids=[terminal_id], stamp=stamp)


def device_push(*, key: DeviceKey, snapshot: dict[str, Any]) -> dict[str, Any]:
    """An EA's verified, validated snapshot (``positions.push``), then ``after_read``.
    Raises ApplicationError as ``positions.push.device_snapshot_apply``."""
    answer = push.device_snapshot_apply(key=key, snapshot=snapshot)
    if answer["status"] == "applied":
        after_read(account_ids=[answer["account_id"]], source="push")
    return answer


def liquidation_recheck(*, episode_id: int) -> str:
    """The guard's re-check, reading fresh through the whole pipeline (a priority read:
    its terminal serves it before routine reads)."""
    return guard_episodes.liquidation_recheck(
        episode_id=episode_id,
        read=lambda ids: accounts_sync(account_ids=ids, source="recheck", priority=True))
