"""Thin Celery wrappers around positions.services housekeeping. The sync batch and the
dispatcher tick are the pipeline's (``pipeline.tasks``). All are safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from positions import services

logger = logging.getLogger(__name__)


@shared_task(soft_time_limit=30, time_limit=60)
def sync_mark_stale() -> int:
    return services.sync_mark_stale()


@shared_task(soft_time_limit=300, time_limit=600)
def sync_logs_prune() -> int:
    return services.sync_logs_prune(older_than=timedelta(days=settings.SYNC_LOG_RETENTION_DAYS))
