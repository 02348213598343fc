"""How the ``MetaTrader5`` module's functions may be called, as data, and one check against it.

Source: the MetaTrader5 wheel **5.0.6231** (PyPI, ``metatrader5-5.0.6231-cp312-cp312-
win_amd64.whl``; ``pip download MetaTrader5 --platform win_amd64 --only-binary=:all:``).
``DOCSTRINGS`` are copied verbatim from ``strings MetaTrader5/_core.cp312-win_amd64.pyd``.
The keyword names come from the same binary, which holds each keyword's name next to its
error message (``login``, ``server``, ``password``, ``timeout``, ``portable``, ``path``,
``symbol``, ``group``, ``ticket``, ``position``); ``timeout`` and ``portable`` are not in
the docstrings but are in the binary and in the MetaTrader 5 docs ("Python Integration":
initialize, login). The MetaTrader 5 docs call the others "required unnamed parameter"
(dates, ``symbol`` of symbol_info, ``request``, the order_calc_* and copy_rates_* arguments)
or "optional named parameter" (``symbol``/``group``/``ticket`` of positions_get, ``group``
of the history calls).

What the real module does with a call outside these forms: its C functions parse their own
arguments and, on a mismatch, return ``None`` (``False`` from initialize and login) with
``last_error()`` = (RES_E_INVALID_PARAMS = -2, message); they do not raise ``TypeError``.
Messages found in the binary: "Invalid arguments", "Invalid number of arguments", "Unnamed
arguments not allowed", 'Invalid "ticket" argument' (one per keyword), "Invalid 1st unnamed
argument". Observed in the field: keyword dates to history_deals_get answer None with -2
(github.com/Qoyyuum/mcp-metatrader5-server issue 86, fixed by PR 91: "dates are
positional-only in MT5"; a call with no dates and no ticket/position fails too).

Table format: ``SIGNATURES[name]`` is a tuple of ``Form``s; a call is valid when it fits one.
A ``Form`` lists the positional parameters in order (the first ``required`` of them must be
given), the keyword names it accepts and the keywords it requires. ``PARAM_TYPES`` gives
each parameter name's type, the same in every function: "int", "number" (int or float),
"str", "bool", "dict" or "date" (a ``datetime`` or epoch seconds). ``bool`` never counts as
a number. Nothing here imports beyond the standard library: the bridge server loads it on
Windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

MODULE_VERSION = "5.0.6231"


class Form(NamedTuple):
    """One accepted call shape. ``types``: per-parameter types ("" = any JSON scalar)."""

    positional: tuple[str, ...] = ()
    required: int | None = None  # how many positional ones must be given; None = all
    keywords: tuple[str, ...] = ()
    required_keywords: tuple[str, ...] = ()
    typed: bool = True  # False: no type check (the simulator's admin calls)


# Verbatim from MetaTrader5/_core.cp312-win_amd64.pyd, wheel 5.0.6231.
DOCSTRINGS: dict[str, str] = {
    "initialize": 'initialize([path],[server="SERVER"],[login=LOGIN],[password="PASSWORD"])',
    "shutdown": "shutdown()",
    "login": 'login(login,[server="SERVER"],[password="PASSWORD"])',
    "version": "version()",
    "terminal_info": "terminal_info()",
    "account_info": "account_info()",
    "copy_ticks_from": "copy_ticks_from(symbol, date_from, count, flags)",
    "copy_ticks_range": "copy_ticks_range(symbol, date_from, date_to, flags)",
    "copy_rates_from": "copy_rates_from(symbol, timeframe, date_from, count)",
    "copy_rates_from_pos": "copy_rates_from_pos(symbol, timeframe, start_pos, count)",
    "copy_rates_range": "copy_rates_range(symbol, timeframe, date_from, date_to)",
    "positions_total": "positions_total()",
    "positions_get": 'positions_get([symbol="SYMBOL"],[ticket=TICKET],[group="GROUP"])',
    "orders_total": "orders_total()",
    "orders_get": 'orders_get([symbol="SYMBOL"],[ticket=TICKET],[group="GROUP"])',
    "history_orders_total": "history_orders_total(date_from, date_to)",
    "history_orders_get": 'history_orders_get([date_from, date_to, [group="GROUP"]],'
                          "[position=POSITION],[ticket=TICKET])",
    "history_deals_total": "history_deals_total(date_from, date_to)",
    "history_deals_get": 'history_deals_get([date_from, date_to, [group="GROUP"]],'
                         "[position=POSITION],[ticket=TICKET])",
    "order_check": "order_check(request)",
    "order_send": "order_send(request)",
    "order_calc_margin": "order_calc_margin(action, symbol, volume, price,)",
    "order_calc_profit": "order_calc_profit(action, symbol, volume, price_open, price_close)",
    "symbol_info": "symbol_info(symbol)",
    "symbol_info_tick": "symbol_info_tick(symbol)",
    "symbol_select": "symbol_select(symbol,[enable])",
    "symbols_total": "symbols_total()",
    "symbols_get": 'symbols_get([group="GROUP"])',
    "market_book_add": "market_book_add(symbol)",
    "market_book_release": "market_book_release(symbol)",
    "market_book_get": "market_book_get(symbol)",
    "last_error": "last_error()",
}

PARAM_TYPES: dict[str, str] = {
    "path": "str", "login": "int", "password": "str", "server": "str", "timeout": "int",
    "portable": "bool", "symbol": "str", "group": "str", "ticket": "int", "position": "int",
    "date_from": "date", "date_to": "date", "request": "dict", "action": "int",
    "volume": "number", "price": "number", "price_open": "number", "price_close": "number",
    "timeframe": "int", "start_pos": "int", "count": "int", "flags": "int", "enable": "bool",
}

_NONE = (Form(),)
_HISTORY = (  # history_*_get: a date range (group optional), or one position, or one ticket
    Form(positional=("date_from", "date_to"), keywords=("group",)),
    Form(keywords=("position",), required_keywords=("position",)),
    Form(keywords=("ticket",), required_keywords=("ticket",)),
)

SIGNATURES: dict[str, tuple[Form, ...]] = {
    "initialize": (Form(positional=("path",), required=0,
                        keywords=("login", "password", "server", "timeout", "portable")),),
    "login": (Form(positional=("login",), keywords=("password", "server", "timeout")),),
    "shutdown": _NONE,
    "version": _NONE,
    "last_error": _NONE,
    "terminal_info": _NONE,
    "account_info": _NONE,
    "positions_total": _NONE,
    "positions_get": (Form(keywords=("symbol", "group", "ticket")),),
    "orders_total": _NONE,
    "orders_get": (Form(keywords=("symbol", "group", "ticket")),),
    "history_deals_total": (Form(positional=("date_from", "date_to")),),
    "history_deals_get": _HISTORY,
    "history_orders_total": (Form(positional=("date_from", "date_to")),),
    "history_orders_get": _HISTORY,
    "symbol_info": (Form(positional=("symbol",)),),
    "symbol_info_tick": (Form(positional=("symbol",)),),
    "symbol_select": (Form(positional=("symbol", "enable"), required=1),),
    "symbols_total": _NONE,
    "symbols_get": (Form(keywords=("group",)),),
    "order_check": (Form(positional=("request",)),),
    "order_send": (Form(positional=("request",)),),
    "order_calc_margin": (Form(positional=("action", "symbol", "volume", "price")),),
    "order_calc_profit": (
        Form(positional=("action", "symbol", "volume", "price_open", "price_close")),
    ),
    "copy_rates_from": (Form(positional=("symbol", "timeframe", "date_from", "count")),),
    "copy_rates_from_pos": (Form(positional=("symbol", "timeframe", "start_pos", "count")),),
    "copy_rates_range": (Form(positional=("symbol", "timeframe", "date_from", "date_to")),),
    "copy_ticks_from": (Form(positional=("symbol", "date_from", "count", "flags")),),
    "copy_ticks_range": (Form(positional=("symbol", "date_from", "date_to", "flags")),),
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, (bool, int))
    if isinstance(value, bool):
        return False
    return {
        "int": isinstance(value, int),
        "number": isinstance(value, (int, float)),
        "str": isinstance(value, str),
        "dict": isinstance(value, dict),
        "date": isinstance(value, (int, float, datetime)),
    }.get(kind, True)


def _form_error(form: Form, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    required = len(form.positional) if form.required is None else form.required
    if args and not form.positional:
        return "Unnamed arguments not allowed"
    if not required <= len(args) <= len(form.positional):
        return "Invalid number of arguments"
    if set(kwargs) - set(form.keywords) or set(form.required_keywords) - set(kwargs):
        return "Invalid arguments"
    if form.typed:
        for name, value in [*zip(form.positional, args, strict=False), *kwargs.items()]:
            if not _type_ok(PARAM_TYPES.get(name, ""), value):
                return f'Invalid "{name}" argument'
    return None


def call_error(forms: Sequence[Form], args: Sequence[Any],
               kwargs: Mapping[str, Any]) -> str | None:
    """``None`` when the call fits one of ``forms``; else the real module's last_error
    message for it (code RES_E_INVALID_PARAMS), from the first form's point of view."""
    errors = [_form_error(form, args, kwargs) for form in forms]
    if None in errors:
        return None
    return errors[0] or "Invalid arguments"


def check_call(method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """``call_error`` against ``SIGNATURES[method]``. Raises KeyError for a function the
    table does not know (a caller must not serve one it cannot check)."""
    return call_error(SIGNATURES[method], args, kwargs)
