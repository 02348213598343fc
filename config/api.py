"""Shared bits of the DRF API: the id converter and the error for a bad one."""

from __future__ import annotations

from rest_framework import status

from config import schema  # noqa: F401 (registers the schema's DecimalField extension)
from config.errors import ApplicationError

MAX_ID = 2**63 - 1


class AnyIdConverter:
    """Matches any path segment, so a malformed id reaches the view and gets a JSON 400
    (Django's own ``int`` converter would answer an HTML 404)."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


def parse_id(raw: str) -> int:
    """A positive 63-bit integer id, or 400 ``invalid_id``."""
    if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise ApplicationError("The id must be a positive integer.", code="invalid_id",
                               status_code=status.HTTP_400_BAD_REQUEST,
                               detail={"id": raw[:40]})
    return int(raw)
