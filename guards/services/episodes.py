"""Liquidation episodes: warn, re-check with a fresh read, then close all.

One episode per account at a time (a partial unique index decides the race). The re-check
reads through the pipeline (``pipeline.tasks.liquidation_recheck`` calls
``liquidation_recheck`` here with ``pipeline.services.accounts_sync`` as ``read``), so
this app never imports the steps above it. A failed read never liquidates anything."""


from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import TradingAccount
from accounts.terminals import PRIORITY_WAIT_SECONDS, terminal_priority_request
from guards import levels, metrics
from guards.models import (
    AccountGuardState,
    CloseRequest,
    GuardAlert,
    LiquidationEpisode,
)
from guards.services.closes import Outcome, close_request_open, closes_enqueue, episode_finish
from guards.services.configuration import effective_settings
from positions.models import Position

RECHECK_LEASE = timedelta(seconds=60)


RECHECK_RETRIES = 3


ACTIVE_EPISODE = (LiquidationEpisode.Status.WARNING, LiquidationEpisode.Status.LIQUIDATING)


# The re-check reads through the pipeline, which sits above this app: it is scheduled by
# name. The task lives in pipeline/tasks.py and is routed to the "guards" queue.
RECHECK_TASK = "pipeline.tasks.liquidation_recheck"
Read = Callable[[list[int]], Any]


def episode_open(*, account: TradingAccount, reason: str, trigger: dict,
                  now: datetime) -> LiquidationEpisode | None:
    """Open the account's one liquidation episode, or None if another process did first."""
    delay = int(trigger["warning_seconds"])
    try:
        with transaction.atomic():
            episode = LiquidationEpisode.objects.create(
                account=account, reason=reason, trigger=trigger, started_at=now,
                recheck_at=now + timedelta(seconds=delay))
    except IntegrityError:
        return None  # the partial unique index: an episode is already running
    metrics.drawdown_guard_triggers_total.inc()
    transaction.on_commit(lambda: recheck_schedule(episode.pk, delay))
    if delay == 0:
        _terminal_hold(account)
    return episode


def _terminal_hold(account: TradingAccount) -> None:
    """The account's next call sequence (a re-check due now, its closes) is queued: hold
    routine reads of its terminal back for a moment (``PRIORITY_WAIT_SECONDS``), so the
    terminal is still logged into the account when that sequence starts, instead of one
    routine read and two login switches later. The sequence renews the hold while it
    waits for the terminal."""
    if account.terminal_id is not None:
        terminal_id = account.terminal_id
        transaction.on_commit(lambda: terminal_priority_request(
            terminal_ids=[terminal_id], seconds=PRIORITY_WAIT_SECONDS, extend_only=True))


def recheck_schedule(episode_id: int, delay: int | None = None) -> None:
    """Queue the episode's re-check (``RECHECK_TASK``) to run in ``delay`` seconds."""
    current_app.send_task(RECHECK_TASK, args=[episode_id], countdown=delay)


def liquidation_recheck(*, episode_id: int, read: Read) -> str:
    """After the warning delay: a fresh read; still critical → close all; recovered →
    cancel. Without a fresh read the episode waits (a few tries), then aborts: a failed
    read is never a reason to close.

    The re-check holds a lease on the episode (``lease_until``): a second task for the same
    episode (a redelivery, the sweeper) answers "busy" while it runs, and the sweeper
    resumes the episode if the worker dies (``guards_sweep``).

    ``read(account_ids)`` reads the accounts fresh and returns an object whose ``synced``
    lists those read successfully (``positions.services.SyncOutcome``); the pipeline passes
    its own ``accounts_sync``, so the read also flows on to reconciliation and the guard.
    Returns the outcome: done, retry, busy, aborted, cancelled, liquidating, not_pending."""
    now = timezone.now()
    claimed = LiquidationEpisode.objects.filter(
        pk=episode_id, status=LiquidationEpisode.Status.WARNING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_until=now + RECHECK_LEASE)
    if not claimed:
        return (Outcome.BUSY if LiquidationEpisode.objects.filter(
            pk=episode_id, status=LiquidationEpisode.Status.WARNING).exists()
            else "not_pending")
    try:
        return _recheck_leased(episode_id, read)
    except BaseException:
        # Give the lease back at once, so a retry (a database error) need not wait for it
        # to expire; if the database is what failed, the lease expires and the sweeper
        # resumes the episode.
        with contextlib.suppress(DatabaseError):
            LiquidationEpisode.objects.filter(pk=episode_id).update(lease_until=None)
        raise


def _recheck_leased(episode_id: int, read: Read) -> str:
    episode = LiquidationEpisode.objects.select_related("account").get(pk=episode_id)
    account = episode.account
    outcome = read([account.pk])
    now = timezone.now()
    if account.pk not in outcome.synced:
        episode.recheck_attempts += 1
        if episode.recheck_attempts < RECHECK_RETRIES:
            LiquidationEpisode.objects.filter(pk=episode.pk).update(
                recheck_attempts=episode.recheck_attempts, lease_until=None,
                recheck_at=now + timedelta(seconds=2))
            transaction.on_commit(lambda: recheck_schedule(episode.pk, 2))
            return Outcome.RETRY
        episode_finish(episode, LiquidationEpisode.Status.ABORTED,
                        "no fresh read: nothing closed", GuardAlert.Kind.LIQUIDATION_ABORTED,
                        now)
        return "aborted"
    account.refresh_from_db()
    if not _still_breached(account, episode):
        episode_finish(episode, LiquidationEpisode.Status.CANCELLED,
                        f"recovered: drawdown {account.drawdown_percent} %",
                        GuardAlert.Kind.LIQUIDATION_CANCELLED, now)
        return "cancelled"
    return _liquidation_start(episode, account, now)


def _still_breached(account: TradingAccount, episode: LiquidationEpisode) -> bool:
    eff = effective_settings([account.pk])[account.pk]
    reading = levels.drawdown_level(peak_equity=account.peak_equity, equity=account.equity,
                                    thresholds=eff.thresholds)
    if reading.level == levels.Level.CRITICAL:
        return True
    if episode.reason not in {r.value for r in levels.PeriodRule}:
        return False
    state = AccountGuardState.objects.get(account=account)
    return any(b.rule.value == episode.reason for b in levels.period_breaches(
        equity=account.equity, initial_balance=state.initial_balance,
        day_start_balance=state.day_start_balance, peak_equity=account.peak_equity,
        limits=eff.limits))


def _liquidation_start(episode: LiquidationEpisode, account: TradingAccount,
                       now: datetime) -> str:
    with transaction.atomic():
        # race-safe: only the first re-check moves the episode on
        moved = LiquidationEpisode.objects.filter(
            pk=episode.pk, status=LiquidationEpisode.Status.WARNING).update(
            status=LiquidationEpisode.Status.LIQUIDATING, lease_until=None)
        if not moved:
            return "not_pending"
        period = episode.reason in {r.value for r in levels.PeriodRule}
        requests = [
            close_request_open(account=account, ticket=p.ticket, symbol=p.symbol,
                               key=f"episode:{episode.pk}", episode=episode,
                               reason=CloseRequest.Reason.PERIOD if period
                               else CloseRequest.Reason.DRAWDOWN,
                               detail=episode.reason)
            for p in Position.objects.filter(account=account, status=Position.Status.OPEN)
        ]
        if not requests:
            episode_finish(episode, LiquidationEpisode.Status.DONE, "no open positions",
                            GuardAlert.Kind.LIQUIDATION_DONE, now, expect=
                            LiquidationEpisode.Status.LIQUIDATING)
            return Outcome.DONE
        ids = [r.pk for r in requests]
        transaction.on_commit(lambda: closes_enqueue(ids))
        _terminal_hold(account)
    return "liquidating"
