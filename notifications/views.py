"""The Telegram mini app page: one template with its CSS and JS inline, no third-party code
besides Telegram's own ``telegram-web-app.js``."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

TELEGRAM_SCRIPT_ORIGIN = "https://telegram.org"
# Telegram's web clients open a mini app in an iframe; the phone and desktop apps use a
# web view, where frame-ancestors does not apply.
FRAME_ANCESTORS = "'self' https://web.telegram.org"


def content_security_policy(nonce: str) -> str:
    """Scripts: the page's own inline one (by nonce) and Telegram's, nothing else."""
    return "; ".join([
        f"script-src 'nonce-{nonce}' {TELEGRAM_SCRIPT_ORIGIN}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {FRAME_ANCESTORS}",
    ])


@require_safe
@xframe_options_exempt  # X-Frame-Options: DENY would keep it out of web.telegram.org
def mini_app(request: HttpRequest) -> HttpResponse:
    nonce = secrets.token_urlsafe(18)
    response = render(request, "app/index.html", {
        "poll_seconds": settings.MINI_APP_POLL_SECONDS, "csp_nonce": nonce})
    response["Content-Security-Policy"] = content_security_policy(nonce)
    # Telegram's web views cache hard; a new deploy must reach members on the next open.
    patch_cache_control(response, no_cache=True, private=True)
    return response
