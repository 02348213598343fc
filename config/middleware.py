"""Request guards that run before any view: the global body size cap, /metrics auth."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.errors import error_response
from config.parsers import body_cap


def body_size_limit(get_response: Callable[[HttpRequest], HttpResponse]
                    ) -> Callable[[HttpRequest], HttpResponse]:
    """413 ``body_too_large`` when ``Content-Length`` is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``,
    400 ``bad_content_length`` when it is not a number, on every path, before any view
    reads the body. (DRF reads the stream directly, so Django's own check on
    ``request.body`` alone would not stop it; the parser caps what it reads as well.)"""

    def middleware(request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit():
            return error_response(status_code=400, code="bad_content_length",
                                  message="Content-Length must be a non-negative integer.")
        cap = body_cap()
        if int(length) > cap:
            return error_response(status_code=413, code="body_too_large",
                                  message=f"The request body is over {cap} bytes.",
                                  detail={"max_bytes": cap})
        return get_response(request)

    return middleware


def _metrics_credentials_ok(header: str) -> bool:
    token, basic = settings.METRICS_BEARER_TOKEN, settings.METRICS_BASIC_AUTH
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(value.encode(), token.encode())
    if basic and scheme.lower() == "basic":
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, basic.encode())
    return False


def metrics_auth(get_response: Callable[[HttpRequest], HttpResponse]
                 ) -> Callable[[HttpRequest], HttpResponse]:
    """``/metrics`` answers only a scrape with ``Authorization: Bearer <METRICS_BEARER_TOKEN>``
    or basic auth matching ``METRICS_BASIC_AUTH`` (Prometheus's ``authorization`` and
    ``basic_auth`` scrape settings), compared in constant time. With neither configured it
    is open, unless ``METRICS_AUTH_REQUIRED`` (production): then 403 until one is set."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path != "/metrics":
            return get_response(request)
        if not (settings.METRICS_BEARER_TOKEN or settings.METRICS_BASIC_AUTH):
            if settings.METRICS_AUTH_REQUIRED:
                return error_response(
                    status_code=403, code="metrics_not_configured",
                    message="Set METRICS_BEARER_TOKEN or METRICS_BASIC_AUTH to scrape.")
            return get_response(request)
        if _metrics_credentials_ok(request.headers.get("Authorization", "")):
            return get_response(request)
        response = error_response(status_code=401, code="not_authenticated",
                                  message="Metrics need a bearer token or basic auth.")
        response["WWW-Authenticate"] = ("Bearer" if settings.METRICS_BEARER_TOKEN
                                        else 'Basic realm="metrics"')
        return response

    return middleware
