"""The Telegram mini app page: one template, no third-party code (the mini-app work fills it)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def mini_app(request: HttpRequest) -> HttpResponse:
    return render(request, "app/index.html", {"poll_seconds": settings.MINI_APP_POLL_SECONDS})
