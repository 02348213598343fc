from __future__ import annotations

import sys

from django.db import DatabaseError
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views import defaults

from accounts.models import TradingAccount
from config.errors import error_response
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


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a JSON 404 under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response(status_code=404, code="not_found", message="Not found.")
    return defaults.page_not_found(request, exception)


def api_server_error(request: HttpRequest) -> HttpResponse:
    return error_response(status_code=500, code="server_error",
                          message="A server error occurred; it has been logged.")


OUTAGE_RETRY_AFTER_SECONDS = 10


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a JSON 500 under /api/, Django's page elsewhere; while the database is
    unreachable, a JSON 503 ``service_unavailable`` with ``Retry-After`` on every path
    (Django calls this inside its exception handling, so the error is at hand)."""
    if isinstance(sys.exc_info()[1], DatabaseError):
        response = error_response(
            status_code=503, code="service_unavailable",
            message="The service cannot reach its database; try again shortly.")
        response["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
        return response
    if request.path.startswith("/api/"):
        return api_server_error(request)
    return defaults.server_error(request)
