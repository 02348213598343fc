from __future__ import annotations

from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import TradingAccount
from positions.models import Position


def index(request: HttpRequest) -> HttpResponse:
    """A landing page: what is running and where to look next."""
    accounts = TradingAccount.objects.filter(is_active=True)
    last_sync = accounts.aggregate(m=Max("last_synced_at"))["m"]
    return render(request, "index.html", {
        "accounts": accounts.count(),
        "by_status": accounts.values_list("sync_status").annotate(n=Count("id")).order_by(
            "sync_status").values_list("sync_status", "n"),
        "open_positions": Position.objects.filter(status=Position.Status.OPEN).count(),
        "last_sync_age": None if last_sync is None
        else int((timezone.now() - last_sync).total_seconds()),
    })
