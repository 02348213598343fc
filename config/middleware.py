"""Request guards that run before any view: the global body size cap."""

from __future__ import annotations

from collections.abc import Callable

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
