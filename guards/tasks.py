"""Guard and close tasks: their own queues (``guards``, ``close``), never behind a sync
backlog. Both are safe to run twice (conditional state changes, keyed close requests)."""

from __future__ import annotations

from celery import shared_task

from guards import services


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def liquidation_recheck(episode_id: int) -> str:
    return services.liquidation_recheck(episode_id=int(episode_id))


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def close_request_execute(close_request_id: int) -> str:
    return services.close_request_execute(close_request_id=int(close_request_id))


@shared_task(soft_time_limit=60, time_limit=90)
def market_guard_scan() -> int:
    return services.market_guard_scan()
