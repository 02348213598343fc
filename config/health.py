"""GET /healthz: is the database reachable, is the dispatcher ticking, how fresh is sync."""

from __future__ import annotations

from django.db import DatabaseError
from django.db.models import Count, Max
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from accounts.models import TradingAccount
from positions.models import DispatcherHeartbeat


def healthz(request: HttpRequest) -> JsonResponse:
    try:
        statuses = dict(
            TradingAccount.objects.filter(is_active=True).values_list("sync_status")
            .annotate(n=Count("id")).values_list("sync_status", "n")
        )
        last_sync = TradingAccount.objects.aggregate(m=Max("last_synced_at"))["m"]
        beat = DispatcherHeartbeat.objects.filter(name="sync").first()
    except DatabaseError as exc:
        return JsonResponse({"ok": False, "database": f"unreachable: {exc}"}, status=503)
    now = timezone.now()
    return JsonResponse({
        "ok": True,
        "database": "ok",
        "accounts_by_sync_status": statuses,
        "last_sync_age_seconds": None if last_sync is None
        else round((now - last_sync).total_seconds(), 1),
        "dispatcher": None if beat is None or beat.last_tick_at is None else {
            "ticks": beat.ticks,
            "last_tick_age_seconds": round((now - beat.last_tick_at).total_seconds(), 1),
            "last_dispatched": beat.last_dispatched,
        },
    })
