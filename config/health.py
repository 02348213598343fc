"""``GET /healthz``: healthy only if the figures are fresh; ``GET /livez``: the process answers.

``/healthz`` answers 503 when any check fails, and names the failing checks in
``failing``, never with an exception's text (anyone may call it):

- ``database``: the database answers;
- ``broker``: the Celery broker accepts a connection (Redis, or the filesystem folder);
- ``dispatcher``: the 1 s dispatcher tick stamped its heartbeat within
  ``HEALTH_DISPATCHER_MAX_AGE_SECONDS`` (5);
- ``stale_accounts``: at most ``HEALTH_STALE_MAX_PERCENT`` (10) % of active accounts are stale
  or in error (an account turns stale when its last good read is older than 3 × its
  cadence: ``positions.services.sync_mark_stale``);
- ``terminals``: when terminals are registered (``accounts.Terminal``), at least one is up
  (enabled, fewer than ``TERMINAL_FAILOVER_FAILURES`` failures in a row). ``terminals``
  lists each one's health: up, failures in a row, seconds since its last good call, the
  last call sequence's latency (ms), accounts held. Never its URL or token.

A fresh install with no dispatcher tick yet is not healthy: nothing is being synced.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Max, Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from accounts.models import Terminal, TradingAccount
from accounts.terminals import terminal_healthy
from positions.models import DispatcherHeartbeat

logger = logging.getLogger(__name__)

UNHEALTHY_STATUSES = (TradingAccount.SyncStatus.STALE, TradingAccount.SyncStatus.ERROR)


def livez(request: HttpRequest) -> JsonResponse:
    """The web process is alive; touches nothing else (for a process supervisor)."""
    return JsonResponse({"ok": True})


def _broker_ok() -> bool:
    from config.celery import app

    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception:
        logger.warning("healthz: the Celery broker is unreachable", exc_info=True)
        return False
    return True


def _terminals(now: datetime) -> list[dict]:
    """Each registered terminal's health (one query)."""
    rows = Terminal.objects.annotate(
        held=Count("accounts", filter=Q(accounts__is_active=True))).order_by("name")
    return [{
        "name": t.name, "kind": t.kind, "enabled": t.enabled, "up": terminal_healthy(t),
        "consecutive_failures": t.consecutive_failures, "latency_ms": t.latency_ms,
        "last_ok_age_seconds": None if t.last_ok_at is None
        else round((now - t.last_ok_at).total_seconds(), 1),
        "accounts": t.held,
    } for t in rows]


def healthz(request: HttpRequest) -> JsonResponse:
    """Figures, and 200 only when every check passes (see the module docstring)."""
    now = timezone.now()
    failing: list[str] = []
    body: dict = {"checks": {}}
    try:
        statuses = dict(
            TradingAccount.objects.filter(is_active=True).values_list("sync_status")
            .annotate(n=Count("id")).values_list("sync_status", "n"))
        last_sync = TradingAccount.objects.aggregate(m=Max("last_synced_at"))["m"]
        beat = DispatcherHeartbeat.objects.filter(name="sync").first()
    except DatabaseError as exc:
        logger.warning("healthz: the database is unreachable (%s)", type(exc).__name__)
        failing.append("database")
        statuses, last_sync, beat = {}, None, None
    else:
        body.update({
            "accounts_by_sync_status": statuses,
            "last_sync_age_seconds": None if last_sync is None
            else round((now - last_sync).total_seconds(), 1),
            "dispatcher": None if beat is None or beat.last_tick_at is None else {
                "ticks": beat.ticks,
                "last_tick_age_seconds": round((now - beat.last_tick_at).total_seconds(), 1),
                "last_dispatched": beat.last_dispatched,
            },
        })
        tick_age = body["dispatcher"]["last_tick_age_seconds"] if body["dispatcher"] else None
        if tick_age is None or tick_age > settings.HEALTH_DISPATCHER_MAX_AGE_SECONDS:
            failing.append("dispatcher")
        total = sum(statuses.values())
        unhealthy = sum(statuses.get(s, 0) for s in UNHEALTHY_STATUSES)
        share = Decimal(0) if not total else (Decimal(unhealthy) * 100 / total).quantize(
            Decimal("0.1"))
        body["stale_percent"] = str(share)
        if share > Decimal(str(settings.HEALTH_STALE_MAX_PERCENT)):
            failing.append("stale_accounts")
        body["terminals"] = _terminals(now)
        if body["terminals"] and not any(t["up"] for t in body["terminals"]):
            failing.append("terminals")
    if not _broker_ok():
        failing.append("broker")
    for name in ("database", "broker", "dispatcher", "stale_accounts", "terminals"):
        body["checks"][name] = "failing" if name in failing else "ok"
    body.update(ok=not failing, failing=failing)
    return JsonResponse(body, status=503 if failing else 200)
