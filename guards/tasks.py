"""Guard and close tasks: their own queues (``guards``, ``close``), never behind a sync
backlog. All are safe to run twice (leases, conditional state changes, keyed close
requests), so they are acknowledged late and given back when a worker dies
(``acks_late``, ``reject_on_worker_lost``): the message is delivered again, and the sweeper
(``guards_sweep``) resumes whatever a lost task left behind sooner than that.

The re-check after a liquidation warning reads through the pipeline, so its task is
``pipeline.tasks.liquidation_recheck`` (routed to the ``guards`` queue too).

A database error (PostgreSQL restarting) retries the task with backoff instead of
dropping it.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from guards import services

RESILIENT = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": False,
    "max_retries": 20,
    "soft_time_limit": 60,
    "time_limit": 90,
}


@shared_task(**RESILIENT)
def close_request_execute(close_request_id: int) -> str:
    return services.close_request_execute(close_request_id=int(close_request_id))


@shared_task(**RESILIENT)
def close_requests_execute(close_request_ids: list[int]) -> dict[str, str]:
    """One account's close requests in one call sequence (``closes_enqueue``)."""
    statuses = services.close_requests_execute(
        close_request_ids=[int(i) for i in close_request_ids])
    return {str(k): v for k, v in statuses.items()}


@shared_task(soft_time_limit=60, time_limit=90)
def market_guard_scan() -> int:
    return services.market_guard_scan()


@shared_task(soft_time_limit=20, time_limit=30)
def guards_sweep() -> dict[str, int]:
    return services.guards_sweep()
