"""The sweeper: every non-final guard state has a way out."""


from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from guards.models import (
    CloseRequest,
    LiquidationEpisode,
)
from guards.services.closes import episode_maybe_done
from guards.services.episodes import recheck_schedule

logger = logging.getLogger(__name__)


SWEEP_GRACE = timedelta(seconds=10)  # how late a due re-check or close may be


SWEEP_LIMIT = 500


def guards_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Resume what a lost task left behind (a worker SIGKILLed, a hard time limit, a
    database error): countdowns whose re-check is overdue, close requests whose next
    attempt is overdue (a "sending" one only after its lease expired: it is looked up
    before any resend), and liquidations whose closes are all final. Safe to run at any
    time and twice at once: each resumed task claims its row first. Returns counts."""
    now = now or timezone.now()
    cutoff = now - SWEEP_GRACE
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    episodes = list(LiquidationEpisode.objects.filter(
        free, status=LiquidationEpisode.Status.WARNING, recheck_at__lt=cutoff)
        .values_list("pk", flat=True)[:SWEEP_LIMIT])
    # pushed ahead so the next sweep does not queue them again while these run
    LiquidationEpisode.objects.filter(pk__in=episodes).update(recheck_at=now)
    requests = list(CloseRequest.objects.filter(
        status__in=(CloseRequest.Status.PENDING, CloseRequest.Status.SENDING),
        next_attempt_at__lt=cutoff).filter(
        Q(sending_until__isnull=True) | Q(sending_until__lt=now))
        .values_list("pk", flat=True)[:SWEEP_LIMIT])
    CloseRequest.objects.filter(pk__in=requests).update(next_attempt_at=now)
    finished = 0
    for episode_id in LiquidationEpisode.objects.filter(
            status=LiquidationEpisode.Status.LIQUIDATING).exclude(
            close_requests__status__in=(CloseRequest.Status.PENDING,
                                        CloseRequest.Status.SENDING)).values_list(
            "pk", flat=True)[:SWEEP_LIMIT]:
        with transaction.atomic():
            episode_maybe_done(episode_id, now)
            finished += 1
    from guards.tasks import close_request_execute

    for episode_id in episodes:
        recheck_schedule(episode_id)
    for request_id in requests:
        close_request_execute.apply_async(args=[request_id])
    if episodes or requests:
        logger.warning("guards sweep resumed %d re-checks and %d closes",
                       len(episodes), len(requests))
    return {"rechecks": len(episodes), "closes": len(requests), "episodes": finished}
