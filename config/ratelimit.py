"""The one rate limit the API answers with ``Retry-After``: at most one action per key per
window, shared by every web process through the cache (Redis in production).

Used by the positions force-refresh (one per account per ``FORCE_REFRESH_MIN_SECONDS``) and
the guards' manual close (one per account and symbol per 30 s).
"""

from __future__ import annotations

import math
import time

from django.core.cache import cache
from rest_framework import status

from config.errors import ApplicationError


def once_per(key: str, seconds: int, *, message: str, code: str = "rate_limited") -> None:
    """Let the first call for ``key`` through, then refuse every other one for ``seconds``.

    The claim is one atomic cache ``add`` (two requests racing: only one ``add`` creates the
    key, so only one gets through); the key holds the Unix time the window ends, so a
    refused call can say how long to wait.

    Raises ApplicationError 429 ``code`` with ``message``, ``detail={"retry_after": n}`` and
    the header ``Retry-After: n``, n the whole seconds left in the window (at least 1).
    """
    until = time.time() + seconds
    if cache.add(key, until, timeout=seconds):
        return
    # the key may expire between the add and this get: then the window is a fresh one
    held = float(cache.get(key) or until)
    retry_after = max(1, math.ceil(held - time.time()))
    raise ApplicationError(message, code=code, status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                           detail={"retry_after": retry_after},
                           headers={"Retry-After": str(retry_after)})
