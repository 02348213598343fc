"""Telegram Mini App ``initData`` validation, exactly as Telegram documents it.

Telegram docs, "Validating data received via the Mini App":

- the data-check-string is every field but ``hash``, sorted by key, ``key=value`` joined by
  ``\\n`` (values URL-decoded);
- secret key = HMAC-SHA256 with the key ``"WebAppData"`` over the bot token;
- the expected hash = hex HMAC-SHA256 with that secret over the data-check-string, compared
  in constant time (``hmac.compare_digest``);
- ``auth_date`` (Unix seconds) older than the allowed age is refused.

Pure functions, no Django. Errors are ``InitDataError`` with a stable ``code``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

MAX_INIT_DATA_BYTES = 4096
FUTURE_SKEW_SECONDS = 60


class InitDataError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TelegramUser:
    id: int
    first_name: str
    last_name: str
    username: str
    auth_date: int


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields))


def sign(fields: dict[str, str], *, bot_token: str) -> str:
    """The hex hash Telegram would put in ``hash`` for these fields."""
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    return hmac.new(secret, data_check_string(fields).encode(), hashlib.sha256).hexdigest()


def validate(init_data: str, *, bot_token: str, max_age_seconds: int,
             now: float | None = None) -> TelegramUser:
    """Check ``init_data`` (the raw query string from ``Telegram.WebApp.initData``) and
    return its user. Raises InitDataError: ``malformed``, ``missing_hash``, ``bad_hash``,
    ``expired``, ``no_user``, ``not_configured``."""
    if not bot_token:
        # said to the member: the operator's log tells which setting is missing
        raise InitDataError("not_configured", "Telegram sign-in is not available here.")
    if not isinstance(init_data, str) or not init_data or \
            len(init_data.encode()) > MAX_INIT_DATA_BYTES:
        raise InitDataError("malformed", "init_data must be a non-empty query string")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("malformed", "init_data is not a query string") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:  # a duplicated key could smuggle a second, unsigned value
            raise InitDataError("malformed", f"duplicated key {key!r}")
        fields[key] = value
    given = fields.pop("hash", None)
    if not given:
        raise InitDataError("missing_hash", "init_data has no hash")
    expected = sign(fields, bot_token=bot_token)
    if not hmac.compare_digest(expected, given.lower()):
        raise InitDataError("bad_hash", "init_data signature does not match")
    now = time.time() if now is None else now
    try:
        auth_date = int(fields.get("auth_date", ""))
    except ValueError:
        raise InitDataError("malformed", "auth_date is not a number") from None
    if now - auth_date > max_age_seconds or auth_date - now > FUTURE_SKEW_SECONDS:
        raise InitDataError("expired", "init_data is too old")
    try:
        user: Any = json.loads(fields.get("user", ""))
        user_id = int(user["id"])
    except (ValueError, KeyError, TypeError):
        raise InitDataError("no_user", "init_data carries no valid user") from None
    if not isinstance(user, dict) or user_id <= 0:
        raise InitDataError("no_user", "init_data carries no valid user")
    return TelegramUser(id=user_id, first_name=str(user.get("first_name", ""))[:150],
                        last_name=str(user.get("last_name", ""))[:150],
                        username=str(user.get("username", ""))[:100], auth_date=auth_date)
