"""Thin Celery wrappers around the dashboard's reads."""

from __future__ import annotations

import logging

from celery import shared_task

from dashboard import equity

logger = logging.getLogger(__name__)


@shared_task(soft_time_limit=50, time_limit=60)
def equity_sparklines_warm() -> int:
    """Fill the sparklines' cache with the finished buckets it lacks (safe to run twice:
    a bucket computed twice is the same)."""
    computed = equity.sparklines_warm()
    if computed:
        logger.info("dashboard: %d equity buckets computed", computed)
    return computed
