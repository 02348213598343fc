"""Request parsing, validation rules and stop triggers of the simulated terminal.

Helpers of ``brokers.sim.terminal``; MetaTrader 5 messages and rules, Decimal prices in USD
per EUR, volumes in lots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from brokers import mt5_api as mt5
from brokers.sim.book import (
    POINT,
    SYMBOL,
    VOLUME_MAX,
    VOLUME_MIN,
    VOLUME_STEP,
    Book,
    Quote,
    SimPosition,
)

ERROR_MESSAGES = {
    mt5.RES_S_OK: "Success",
    mt5.RES_E_FAIL: "Not logged in",
    mt5.RES_E_INVALID_PARAMS: "Invalid params",
    mt5.RES_E_NOT_FOUND: "Terminal: Not found",
    mt5.RES_E_AUTH_FAILED: "Authorization failed",
    mt5.RES_E_INTERNAL_FAIL: "Internal IPC general error",
    mt5.RES_E_INTERNAL_FAIL_CONNECT: "No IPC connection",
    mt5.RES_E_INTERNAL_FAIL_TIMEOUT: "IPC timeout",
}
FAULT_ERRORS = {
    "none": mt5.RES_E_INTERNAL_FAIL,
    "timeout": mt5.RES_E_INTERNAL_FAIL_TIMEOUT,
    "disconnect": mt5.RES_E_INTERNAL_FAIL_CONNECT,
}
RETCODE_COMMENTS = {
    mt5.TRADE_RETCODE_REQUOTE: "Requote",
    mt5.TRADE_RETCODE_REJECT: "Request rejected",
    mt5.TRADE_RETCODE_DONE: "Request executed",
    mt5.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    mt5.TRADE_RETCODE_INVALID: "Invalid request",
    mt5.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    mt5.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    mt5.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    mt5.TRADE_RETCODE_NO_MONEY: "No money",
    mt5.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    mt5.TRADE_RETCODE_POSITION_CLOSED: "Position doesn't exist",
}
# MqlTradeRequest fields; any other key makes the request malformed.
REQUEST_KEYS = frozenset({
    "action", "magic", "order", "symbol", "volume", "price", "stoplimit", "sl", "tp",
    "deviation", "type", "type_filling", "type_time", "expiration", "comment", "position",
    "position_by",
})
ALLOWED_FILLINGS = {mt5.ORDER_FILLING_FOK, mt5.ORDER_FILLING_IOC}  # SYMBOL_FILLING_FOK|IOC


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed ``order_send`` request (Decimal prices and volume; 0 price = market)."""

    action: int
    symbol: str
    volume: Decimal
    type: int
    price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    deviation: int
    magic: int
    comment: str
    position: int
    type_filling: int


def to_decimal(value: Any) -> Decimal:
    """A number (int, float, str or Decimal; not bool) as a finite Decimal, via its str."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TypeError(f"not a number: {value!r}")
    result = Decimal(str(value))
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def to_level(value: Any) -> Decimal | None:
    """A SL/TP price; 0 (MetaTrader 5's "no level") or None give None."""
    level = to_decimal(value or 0)
    return level if level > 0 else None


def parse_request(request: object) -> Request | None:
    """The request as ``Request``, or None when it is malformed (RES_E_INVALID_PARAMS)."""
    if not isinstance(request, Mapping) or not set(request) <= REQUEST_KEYS:
        return None
    if not {"action", "symbol", "volume", "type"} <= set(request):
        return None
    try:
        return Request(
            action=int(request["action"]), symbol=str(request["symbol"]),
            volume=to_decimal(request["volume"]), type=int(request["type"]),
            price=to_decimal(request.get("price", 0)), sl=to_level(request.get("sl")),
            tp=to_level(request.get("tp")),
            deviation=int(request.get("deviation", 0)), magic=int(request.get("magic", 0)),
            comment=str(request.get("comment", "")), position=int(request.get("position", 0)),
            type_filling=int(request.get("type_filling", mt5.ORDER_FILLING_FOK)),
        )
    except (TypeError, ValueError, InvalidOperation):
        return None


def volume_ok(volume: Decimal) -> bool:
    """volume_min <= volume <= volume_max and a whole number of volume_step."""
    return VOLUME_MIN <= volume <= VOLUME_MAX and volume % VOLUME_STEP == 0


def stops_ok(order_type: int, sl: Decimal | None, tp: Decimal | None, quote: Quote) -> bool:
    """MetaTrader 5 stop placement, stops level 0: a buy needs SL < bid < TP, a sell needs
    TP < ask < SL (a buy's stops trigger on the bid, a sell's on the ask)."""
    if order_type == mt5.ORDER_TYPE_BUY:
        return (sl is None or sl < quote.bid) and (tp is None or tp > quote.bid)
    return (sl is None or sl > quote.ask) and (tp is None or tp < quote.ask)


def stop_hit(position: SimPosition, open_bid: Decimal | None, low: Decimal, high: Decimal,
             spread: Decimal) -> tuple[Decimal, int] | None:
    """(fill price, DEAL_REASON_SL|TP) when the bid path hits the position's SL or TP.

    ``open_bid`` is the bar's open when the segment starts a bar: a gap past a level fills
    at that open. Otherwise a level inside ``low`` .. ``high`` fills at the level, SL first.
    A buy watches the bid; a sell watches the ask (bid + spread)."""
    sl, tp = position.sl, position.tp
    if position.is_buy:
        if open_bid is not None and sl is not None and open_bid <= sl:
            return open_bid, mt5.DEAL_REASON_SL
        if open_bid is not None and tp is not None and open_bid >= tp:
            return open_bid, mt5.DEAL_REASON_TP
        if sl is not None and low <= sl:
            return sl, mt5.DEAL_REASON_SL
        if tp is not None and high >= tp:
            return tp, mt5.DEAL_REASON_TP
        return None
    open_ask = None if open_bid is None else open_bid + spread
    if open_ask is not None and sl is not None and open_ask >= sl:
        return open_ask, mt5.DEAL_REASON_SL
    if open_ask is not None and tp is not None and open_ask <= tp:
        return open_ask, mt5.DEAL_REASON_TP
    if sl is not None and high + spread >= sl:
        return sl, mt5.DEAL_REASON_SL
    if tp is not None and low + spread <= tp:
        return tp, mt5.DEAL_REASON_TP
    return None


def _closing_refusal(request: Request, position: SimPosition | None) -> int | None:
    """A close (``request.position`` set): the position must exist, be on the symbol, be
    the opposite side, and hold at least the volume asked."""
    if position is None:
        return mt5.TRADE_RETCODE_POSITION_CLOSED
    if (request.type == mt5.ORDER_TYPE_BUY) == position.is_buy or \
            request.symbol != position.symbol:
        return mt5.TRADE_RETCODE_INVALID
    if request.volume > position.volume:
        return mt5.TRADE_RETCODE_INVALID_VOLUME
    return None


def refusal(book: Book, request: Request, position: SimPosition | None, quote: Quote, *,
            read_only: bool) -> int | None:
    """The retcode refusing a market ``request`` on ``book`` (``position``: the position it
    closes, None if unknown), or None when it may be executed. Checks, in order: read-only
    login, action/symbol/type, filling mode, volume, the position, the price against the
    market +- deviation points, then for an open the stops and the free margin after it."""
    if read_only:
        return mt5.TRADE_RETCODE_TRADE_DISABLED
    if request.action != mt5.TRADE_ACTION_DEAL or request.symbol != SYMBOL or \
            request.type not in (mt5.ORDER_TYPE_BUY, mt5.ORDER_TYPE_SELL):
        return mt5.TRADE_RETCODE_INVALID
    if request.type_filling not in ALLOWED_FILLINGS:
        return mt5.TRADE_RETCODE_INVALID_FILL
    if not volume_ok(request.volume):
        return mt5.TRADE_RETCODE_INVALID_VOLUME
    if request.position:
        closing = _closing_refusal(request, position)
        if closing is not None:
            return closing
    market = quote.ask if request.type == mt5.ORDER_TYPE_BUY else quote.bid
    if request.price > 0 and abs(request.price - market) > request.deviation * POINT:
        return mt5.TRADE_RETCODE_REQUOTE
    if request.position:
        return None
    if not stops_ok(request.type, request.sl, request.tp, quote):
        return mt5.TRADE_RETCODE_INVALID_STOPS
    position_type = mt5.POSITION_TYPE_BUY if request.type == mt5.ORDER_TYPE_BUY else \
        mt5.POSITION_TYPE_SELL
    trial = SimPosition(0, position_type, request.volume, market, None, None, 0, "", 0,
                        quote.time, quote.time)
    if book.figures(quote, extra=[trial]).margin_free < 0:
        return mt5.TRADE_RETCODE_NO_MONEY
    return None
