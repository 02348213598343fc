"""The Telegram Bot API, as far as alerts need it: ``sendMessage`` and its rate limits.

Source: Telegram Bot API docs, "Making requests" (every answer is JSON with ``ok``, and on
error ``error_code``, ``description`` and optional ``parameters.retry_after``) and the Bots
FAQ, "My bot is hitting limits": avoid more than one message per second in one chat and
more than about 30 messages per second overall.

The limits are shared by every worker process through the Django cache (Redis in
production): two atomic primitives, ``SET NX EX`` for the per-chat slot and ``INCR`` on a
per-second key for the global budget. A library (``limits``) would add a dependency for the
same two calls; Django's cache is already configured, and in development it falls back to
the file cache (not atomic across processes, harmless with one worker).
"""

from __future__ import annotations

import functools
import math
import time

import httpx
from django.conf import settings
from django.core.cache import cache

from notifications.models import TELEGRAM_TEXT_LIMIT

PER_CHAT_INTERVAL_SECONDS = 1  # at most one message per second per chat
GLOBAL_PER_SECOND = 30  # at most thirty per second overall
RATE_KEY_PREFIX = "notify:tg"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class TelegramError(Exception):
    """A send that did not succeed. ``error_code`` is Telegram's (or the HTTP status)."""

    def __init__(self, message: str, *, error_code: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class TelegramRetryAfter(TelegramError):
    """429 Too Many Requests: wait ``retry_after`` seconds before the next try."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, error_code=429)
        self.retry_after = retry_after


class TelegramUnavailable(TelegramError):
    """A network error, a timeout or a 5xx: worth retrying later."""


class TelegramRejected(TelegramError):
    """Any other 4xx (400 chat not found, 403 bot blocked by the user): never retried."""


def text_fit(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """``text`` cut to Telegram's limit, with "…" when cut.

    Telegram counts UTF-16 code units, so a character outside the BMP (most emoji) counts
    twice; the result is at most ``limit`` units and so also at most ``limit`` characters.
    """
    if len(text.encode("utf-16-le")) // 2 <= limit:
        return text
    kept, used = [], 0
    for char in text:
        units = 2 if ord(char) > 0xFFFF else 1
        if used + units > limit - 1:
            break
        kept.append(char)
        used += units
    return "".join(kept) + "…"


@functools.cache
def _client() -> httpx.Client:
    # One pooled client per process (created lazily, so after a prefork worker forks):
    # each message does not pay a new TLS handshake.
    return httpx.Client(timeout=TIMEOUT)


def _scrub(message: str) -> str:
    token = settings.TELEGRAM_BOT_TOKEN
    return message.replace(token, "***") if token else message


def send_message(*, chat_id: int, text: str, disable_notification: bool) -> int:
    """POST ``{base}/bot{token}/sendMessage``; return Telegram's ``message_id``.

    Plain text (no ``parse_mode``), so nothing in ``text`` needs escaping.
    Raises TelegramRetryAfter (429), TelegramUnavailable (network, timeout, 5xx, a reply
    that is not the API's JSON) or TelegramRejected (other 4xx). Error messages never
    contain the bot token.
    """
    url = f"{settings.TELEGRAM_API_BASE_URL}/bot{settings.TELEGRAM_BOT_TOKEN}/sendMessage"
    body = {"chat_id": chat_id, "text": text, "disable_notification": disable_notification}
    try:
        response = _client().post(url, json=body)
    except httpx.TransportError as exc:  # connect, read, timeouts, protocol errors
        raise TelegramUnavailable(_scrub(f"{type(exc).__name__}: {exc}")) from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TelegramUnavailable(f"HTTP {response.status_code}: not the Bot API's JSON",
                                  error_code=response.status_code)
    if response.status_code == 200 and data.get("ok") is True:
        return int(data["result"]["message_id"])
    code = int(data.get("error_code") or response.status_code)
    description = _scrub(f"{code}: {data.get('description', '')}")[:400]
    if code == 429:
        parameters = data.get("parameters") or {}
        retry_after = parameters.get("retry_after") or response.headers.get("Retry-After")
        raise TelegramRetryAfter(description, retry_after=max(1, int(retry_after or 1)))
    if code >= 500 or response.status_code >= 500:
        raise TelegramUnavailable(description, error_code=code)
    raise TelegramRejected(description, error_code=code)


def _chat_key(chat_id: int) -> str:
    return f"{RATE_KEY_PREFIX}:chat:{chat_id}"


def send_slot_take(*, chat_id: int) -> float:
    """Take the right to send one message to ``chat_id`` now: 0.0 when taken, else the
    seconds to wait before asking again. Shared by every process through the cache."""
    now = time.time()
    free_at = now + PER_CHAT_INTERVAL_SECONDS
    # SET NX EX: one message per chat per interval, whoever asks first.
    if not cache.add(_chat_key(chat_id), free_at, timeout=PER_CHAT_INTERVAL_SECONDS):
        busy_until = cache.get(_chat_key(chat_id))
        wait = (busy_until - now) if isinstance(busy_until, float) else 0.0
        return max(round(wait, 3), 0.1)
    second = int(now)
    key = f"{RATE_KEY_PREFIX}:all:{second}"
    cache.add(key, 0, timeout=2)
    try:
        used = cache.incr(key)  # INCR: atomic across processes
    except ValueError:  # the key expired between add and incr: a new second began
        used = 1
    if used > GLOBAL_PER_SECOND:
        cache.delete(_chat_key(chat_id))  # nothing was sent to this chat after all
        return max(round(second + 1 - now, 3), 0.1)
    return 0.0


def chat_pause(*, chat_id: int, seconds: int) -> None:
    """Hold every message to ``chat_id`` for ``seconds`` (after Telegram's 429)."""
    seconds = max(1, math.ceil(seconds))
    cache.set(_chat_key(chat_id), time.time() + seconds, timeout=seconds)
