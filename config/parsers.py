"""The API's JSON parser: a size cap and a nesting limit checked before anything recurses.

Python's ``json`` recurses once per nesting level, so 1,000 levels in 2 KB raised
``RecursionError`` inside DRF's parser (an HTML 500 before any login). This parser reads
at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413 ``body_too_large`` past it, whatever
``Content-Length`` claimed), then counts the nesting of ``[`` and ``{`` outside strings
(400 ``json_too_deep`` past ``API_JSON_MAX_DEPTH``), and only then hands the text to
``json.loads``. Bare ``NaN``/``Infinity`` tokens go to a ``parse_constant`` hook: the
default refuses them (400 ``parse_error``, as DRF does); a view may keep them as markers
and say where they were (the EA push answers 422 naming the field).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

if TYPE_CHECKING:
    from config.errors import ApplicationError

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _error(message: str, **kwargs: Any) -> ApplicationError:
    # Imported here: config.errors imports rest_framework.views, which imports this
    # module through DEFAULT_PARSER_CLASSES.
    from config.errors import ApplicationError

    return ApplicationError(message, **kwargs)


def body_too_large(cap: int) -> ApplicationError:
    return _error(f"The request body is over {cap} bytes.", code="body_too_large",
                            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                            detail={"max_bytes": cap})


def body_cap() -> int:
    """The largest request body any endpoint accepts, in bytes."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, brackets in strings ignored.

    Linear, no recursion: strings are cut out by one regular expression, then the bracket
    steps are summed. Malformed text gives some number; ``json.loads`` refuses it later.
    """
    steps = [_STEP[m[0][0]] for m in _BRACKET.finditer(_STRING.sub(b"", raw))]
    return max(accumulate(steps), default=0)


class NonFinite(float):
    """A bare ``NaN``/``Infinity``/``-Infinity`` token kept as a marker (see ``parse``)."""

    token: str

    def __new__(cls, token: str) -> NonFinite:
        value = super().__new__(cls, token.replace("Infinity", "inf"))
        value.token = token
        return value


def _refuse(token: str) -> Any:
    raise ValueError(f"Invalid JSON token {token!r}")


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with a body cap and a nesting limit (module docstring)."""

    #: ``None`` refuses NaN/Infinity; a callable gets the token and returns its value.
    parse_constant: Any = None

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict | None = None) -> Any:
        cap = body_cap()
        raw = stream.read(cap + 1) if stream is not None else b""
        if len(raw) > cap:
            raise body_too_large(cap)
        limit = int(settings.API_JSON_MAX_DEPTH)
        if json_depth(raw) > limit:
            raise _error(f"The JSON is nested deeper than {limit} levels.",
                                   code="json_too_deep", detail={"max_depth": limit})
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        hook = type(self).parse_constant or _refuse
        try:
            return json.loads(raw.decode(encoding), parse_constant=hook)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None


class MarkingJSONParser(LimitedJSONParser):
    """Keeps bare NaN/Infinity as ``NonFinite`` markers, for the view to name the field."""

    parse_constant = NonFinite


def non_finite_path(data: Any, path: str = "") -> str | None:
    """Where the first ``NonFinite`` marker sits in parsed JSON, as ``positions[0].volume``;
    None when there is none. Iterative, so it never recurses however deep ``data`` is."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, NonFinite):
            return where
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k))
                         for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None
