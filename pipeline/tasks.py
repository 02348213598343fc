"""The pipeline's Celery tasks: the 1 s dispatcher tick, a sync batch, and the guards'
re-check (a priority read). All are safe to run twice."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.db.models import F
from django.utils import timezone

from accounts.terminals import terminals_rebalance
from guards.tasks import RESILIENT
from pipeline import services
from positions import metrics
from positions import services as sync
from positions.models import DispatcherHeartbeat
from risk import metrics as risk_metrics

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,  # idempotent: a re-delivered batch re-reads the broker and re-applies
    autoretry_for=(OperationalError,),  # e.g. "database is locked" on the embedded SQLite
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=3,
    soft_time_limit=60,
    time_limit=90,
)
def accounts_sync(account_ids: list[int]) -> dict[str, int]:
    """A batch through the pipeline: read, apply, reconcile, guard."""
    started = time.perf_counter()
    outcome = services.accounts_sync(account_ids=[int(a) for a in account_ids])
    logger.info("synced %d accounts (%d failed, %d skipped) in %.2f s", len(outcome.synced),
                len(outcome.failed), len(outcome.skipped), time.perf_counter() - started)
    return {"synced": len(outcome.synced), "failed": len(outcome.failed),
            "skipped": len(outcome.skipped)}


@shared_task(soft_time_limit=10, time_limit=20)
def sync_dispatch() -> int:
    """The 1 s beat tick: give unassigned accounts and those of a failing terminal a
    healthy terminal (``accounts.terminals.terminals_rebalance``), enqueue due accounts
    in batches of one terminal each, and stamp the heartbeat."""
    terminals_rebalance()
    count = sync.sync_dispatch(
        limit=settings.SYNC_MAX_DISPATCH,
        batch_size=settings.SYNC_BATCH_SIZE,
        enqueue=lambda batch: accounts_sync.apply_async(args=[batch], expires=60),
    )
    DispatcherHeartbeat.objects.get_or_create(name="sync")
    DispatcherHeartbeat.objects.filter(name="sync").update(
        ticks=F("ticks") + 1, last_tick_at=timezone.now(), last_dispatched=count
    )
    metrics.sync_dispatched_total.inc(count)
    return count


@shared_task(**RESILIENT)
def liquidation_recheck(episode_id: int) -> str:
    """``guards.services.episodes.RECHECK_TASK``: the re-check after the warning delay."""
    return services.liquidation_recheck(episode_id=int(episode_id))


@shared_task(soft_time_limit=5, time_limit=10)
def mark_to_market() -> dict[str, int]:
    """The 1 s beat tick of the mark-to-market trigger (``services.mark_to_market``), on
    the guards queue: it feeds the guards, a sync backlog must not delay it, and it calls
    terminals (quotes), which the dispatch queue's solo worker must never wait on.
    Idempotent: a second run re-estimates, and a priority read is asked at most once per
    ``MTM_PRIORITY_SECONDS`` per account."""
    result = services.mark_to_market(enqueue=lambda ids, terminal_id, stamp: (
        accounts_priority_read.apply_async(args=[ids, terminal_id, stamp],
                                           expires=settings.MTM_PRIORITY_ANSWER_SECONDS)))
    queued = sum(len(ids) for ids in result.priority.values())
    risk_metrics.priority_reads_total.inc(queued)
    return {"estimated": len(result.estimates), "priority_reads": queued}


@shared_task(**RESILIENT)
def accounts_priority_read(account_ids: list[int], terminal_id: int | None,
                           stamp: str) -> dict[str, int]:
    """A priority read (``services.accounts_priority_read``) on the guards queue."""
    outcome = services.accounts_priority_read(
        account_ids=[int(a) for a in account_ids],
        terminal_id=None if terminal_id is None else int(terminal_id),
        stamp=datetime.fromisoformat(stamp))
    return {"synced": len(outcome.synced), "failed": len(outcome.failed),
            "skipped": len(outcome.skipped)}
