"""Thin Celery wrappers. ``demo_bot_step`` runs only in the demo (``DEMO_BOT=true``)."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.db.models import F

from positions.models import DispatcherHeartbeat


@shared_task(soft_time_limit=60, time_limit=90)
def demo_bot_step() -> bool:
    """One round of the demo's trading bot; a round still running makes this one skip."""
    from reconciliation.demo import demo_bot_step as step

    if not cache.add("demo-bot:running", 1, timeout=90):
        return False
    try:
        beat, _ = DispatcherHeartbeat.objects.get_or_create(name="demo-bot")
        DispatcherHeartbeat.objects.filter(pk=beat.pk).update(ticks=F("ticks") + 1)
        step(step=beat.ticks)
    finally:
        cache.delete("demo-bot:running")
    return True
