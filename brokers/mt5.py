"""The mt5 adapter: a ``BrokerGateway`` over any object with the ``MetaTrader5`` module's API.

On Windows that object is the real ``MetaTrader5`` package; on Linux it is a
``brokers.bridge.client.BridgeTerminal``; in tests and the demo the bridge serves the
simulated terminal. The adapter is the one place that turns the module's floats,
namedtuples and ``None``-plus-``last_error()`` into this project's dataclasses and errors:

- ``None`` from a read is *unknown*: ``BrokerUnavailable`` (``BrokerTimeout`` on a timeout),
  never an empty list. An empty tuple from ``positions_get`` is "no positions".
- A reply that breaks the contract (missing field, NaN, negative volume, an account other
  than the one asked for) is ``BrokerBadReply``, and the caller stores nothing from it.
- A refused login is ``BrokerAuthError``.
- Times: the terminal reports position, deal, tick and bar times in the trade server's
  wall-clock time (``brokers.servertime``); the adapter converts them to aware UTC with the
  account's ``server_timezone`` and asks for deal history in server time.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from brokers import mt5_api
from brokers.errors import (
    BrokerAccountMismatch,
    BrokerAuthError,
    BrokerBadReply,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    BrokerUnknownSymbol,
)
from brokers.gateway import (
    AccountState,
    Bar,
    BrokerPosition,
    CloseResult,
    Deal,
    OrderResult,
    Quote,
    Side,
    SymbolSpec,
)
from brokers.servertime import detect_utc_offset_minutes, to_server_epoch, to_utc

_TIMEOUT_ERRORS = {mt5_api.RES_E_INTERNAL_FAIL_TIMEOUT}
_AUTH_ERRORS = {mt5_api.RES_E_AUTH_FAILED}

DEFAULT_DEVIATION_POINTS = 20
# deals() widens its history window by this much on each side, in server time: a wrong
# server_timezone (offsets span -12 h to +14 h), a terminal clock ahead of ours or a DST
# edge then still cannot hide a deal that was just made. Callers get a superset and
# deduplicate by deal ticket.
DEAL_WINDOW_MARGIN = timedelta(days=1)


class _Record:
    """Attribute access over a mapping, so a dict row validates like a namedtuple."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None


def _field(record: Any, name: str) -> Any:
    try:
        return getattr(record, name)
    except AttributeError:
        raise BrokerBadReply(
            f"{type(record).__name__} has no field {name!r}", detail={"field": name}
        ) from None


def _number(record: Any, name: str, *, minimum: float | None = None,
            positive: bool = False) -> Decimal:
    """A finite number field as Decimal (via its shortest repr, so 1.07219 stays 1.07219)."""
    value = _field(record, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BrokerBadReply(f"{name} is not a number: {value!r}", detail={"field": name})
    if isinstance(value, float) and not math.isfinite(value):
        raise BrokerBadReply(f"{name} is not finite: {value!r}", detail={"field": name})
    if minimum is not None and value < minimum:
        raise BrokerBadReply(f"{name} is below {minimum}: {value!r}", detail={"field": name})
    if positive and value <= 0:
        raise BrokerBadReply(f"{name} must be positive: {value!r}", detail={"field": name})
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _integer(record: Any, name: str, *, positive: bool = False) -> int:
    value = _field(record, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BrokerBadReply(f"{name} is not an integer: {value!r}", detail={"field": name})
    if positive and value <= 0:
        raise BrokerBadReply(f"{name} must be positive: {value!r}", detail={"field": name})
    return value


def _text(record: Any, name: str) -> str:
    value = _field(record, name)
    if not isinstance(value, str):
        raise BrokerBadReply(f"{name} is not text: {value!r}", detail={"field": name})
    return value


def _epoch(record: Any, name: str, zone: str) -> datetime:
    """A server-time epoch field as aware UTC (``brokers.servertime.to_utc``)."""
    seconds = _integer(record, name)
    if seconds < 0:
        raise BrokerBadReply(f"{name} is before 1970: {seconds}", detail={"field": name})
    return to_utc(seconds, zone)


def _optional_price(record: Any, name: str) -> Decimal | None:
    value = _number(record, name, minimum=0)
    return value if value > 0 else None  # MetaTrader 5 reports "no stop" as 0.0


def _close_outcome(ticket: int, requested: Decimal, result: Any) -> CloseResult:
    """A CloseResult from order_send's reply to a close of ``requested`` lots."""
    retcode = _integer(result, "retcode")
    filled_codes = (mt5_api.TRADE_RETCODE_DONE, mt5_api.TRADE_RETCODE_DONE_PARTIAL,
                    mt5_api.TRADE_RETCODE_POSITION_CLOSED)
    filled = retcode in filled_codes
    fill_volume = _number(result, "volume", minimum=0) if filled else None
    partial = retcode == mt5_api.TRADE_RETCODE_DONE_PARTIAL or (
        retcode == mt5_api.TRADE_RETCODE_DONE and fill_volume is not None
        and 0 < fill_volume < requested)
    return CloseResult(
        ticket=ticket,
        retcode=retcode,
        comment=_text(result, "comment"),
        price=_number(result, "price", minimum=0) if filled else None,
        volume=fill_volume,
        deal=_integer(result, "deal") or None,
        done=filled and not partial,
        retryable=retcode in mt5_api.RETRYABLE_RETCODES,
        ambiguous=retcode in mt5_api.AMBIGUOUS_RETCODES,
        partial=partial,
    )


class Mt5Gateway:
    """``BrokerGateway`` for one MetaTrader 5 account behind ``terminal``.

    ``terminal`` is the ``MetaTrader5`` module or anything with its API. The account is
    logged in lazily on first use (and again after a failed call), so constructing a
    gateway never touches the network. ``server_timezone`` is the trade server's IANA zone
    (e.g. "Etc/GMT-2"); an unknown name raises ValueError.
    """

    def __init__(self, terminal: Any, *, login: int, password: str, server: str,
                 timeout_ms: int = 10_000, magic: int = 0,
                 server_timezone: str = "UTC") -> None:
        self.terminal = terminal
        self.login = int(login)
        self._password = password
        self.server = server
        self.timeout_ms = timeout_ms
        self.magic = magic
        try:
            ZoneInfo(server_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown server time zone {server_timezone!r}") from None
        self.server_timezone = server_timezone
        self._logged_in = False

    def __repr__(self) -> str:  # never show the password
        return f"Mt5Gateway(login={self.login}, server={self.server!r})"

    # --- connection ---
    def _failure(self, what: str) -> BrokerError:
        code, message = self.terminal.last_error()
        self._logged_in = False
        detail = {"call": what, "last_error": [code, message]}
        if code in _TIMEOUT_ERRORS:
            return BrokerTimeout(f"{what} timed out: {message}", detail=detail)
        if code in _AUTH_ERRORS:
            return BrokerAuthError(f"login {self.login}@{self.server} refused: {message}",
                                   detail=detail)
        return BrokerUnavailable(f"{what} failed ({code}): {message}", detail=detail)

    def connect(self) -> None:
        """Log the terminal in to this account. Raises BrokerAuthError or BrokerUnavailable."""
        if self._logged_in:
            return
        if not self.terminal.login(self.login, password=self._password, server=self.server,
                                   timeout=self.timeout_ms):
            raise self._failure("login")
        self._logged_in = True

    def _read(self, method: str, *args: Any, symbol: str | None = None, **kwargs: Any) -> Any:
        """Call ``method`` logged in. MetaTrader 5 answers a failure with ``None`` and
        ``last_error``: for a call about ``symbol``, "not found" raises BrokerUnknownSymbol;
        anything else raises as ``_failure`` (BrokerTimeout, BrokerAuthError or
        BrokerUnavailable): the one place that branch is decided."""
        self.connect()
        result = getattr(self.terminal, method)(*args, **kwargs)
        if result is None:
            if symbol is not None and self.terminal.last_error()[0] == mt5_api.RES_E_NOT_FOUND:
                raise BrokerUnknownSymbol(f"{symbol} is not offered by {self.server}",
                                          detail={"symbol": symbol})
            raise self._failure(method)
        return result

    # --- BrokerGateway ---
    def account_state(self) -> AccountState:
        """The account's figures (MetaTrader 5: account_info), in its deposit currency."""
        info = self._read("account_info")
        login = _integer(info, "login", positive=True)
        if login != self.login:
            # the terminal is on another account: never attribute its figures to this one
            raise BrokerAccountMismatch(
                f"asked for account {self.login}, terminal answered {login}",
                detail={"field": "login", "reported_login": login},
            )
        digits = _integer(info, "currency_digits")
        quantum = Decimal(1).scaleb(-digits)
        margin = _number(info, "margin", minimum=0).quantize(quantum)
        level = _number(info, "margin_level", minimum=0)
        return AccountState(
            login=login,
            server=_text(info, "server"),
            currency=_text(info, "currency"),
            leverage=_integer(info, "leverage", positive=True),
            balance=_number(info, "balance").quantize(quantum),
            credit=_number(info, "credit").quantize(quantum),
            profit=_number(info, "profit").quantize(quantum),
            equity=_number(info, "equity").quantize(quantum),
            margin=margin,
            free_margin=_number(info, "margin_free").quantize(quantum),
            margin_level=level.quantize(Decimal("0.01")) if margin > 0 else None,
            margin_so_call=_number(info, "margin_so_call", minimum=0),
            margin_so_so=_number(info, "margin_so_so", minimum=0),
            trade_allowed=bool(_field(info, "trade_allowed")),
        )

    def _position(self, raw: Any) -> BrokerPosition:
        try:
            side = mt5_api.position_side(_integer(raw, "type"))
        except ValueError as exc:
            raise BrokerBadReply(str(exc), detail={"field": "type"}) from None
        return BrokerPosition(
            ticket=_integer(raw, "ticket", positive=True),
            symbol=_text(raw, "symbol"),
            side=side,
            volume=_number(raw, "volume", positive=True),
            price_open=_number(raw, "price_open", positive=True),
            price_current=_number(raw, "price_current", positive=True),
            sl=_optional_price(raw, "sl"),
            tp=_optional_price(raw, "tp"),
            swap=_number(raw, "swap"),
            profit=_number(raw, "profit"),
            magic=_integer(raw, "magic"),
            comment=_text(raw, "comment"),
            opened_at=_epoch(raw, "time", self.server_timezone),
            identifier=_integer(raw, "identifier"),
        )

    def positions(self) -> list[BrokerPosition]:
        """Open positions (MetaTrader 5: positions_get). ``[]`` only if the broker said so."""
        raw = self._read("positions_get")
        if not isinstance(raw, tuple | list):
            raise BrokerBadReply("positions_get did not answer a sequence")
        positions = [self._position(p) for p in raw]
        tickets = [p.ticket for p in positions]
        if len(set(tickets)) != len(tickets):
            raise BrokerBadReply("positions_get answered one ticket twice")
        return positions

    def _deal(self, raw: Any) -> Deal:
        kind = _integer(raw, "type")
        return Deal(
            ticket=_integer(raw, "ticket", positive=True),
            order=_integer(raw, "order"),
            position_id=_integer(raw, "position_id"),
            symbol=_text(raw, "symbol"),
            side=mt5_api.deal_side(kind),
            entry=mt5_api.deal_entry(_integer(raw, "entry")),
            reason=mt5_api.deal_reason(_integer(raw, "reason")),
            volume=_number(raw, "volume", minimum=0),
            price=_number(raw, "price", minimum=0),
            profit=_number(raw, "profit"),
            swap=_number(raw, "swap"),
            commission=_number(raw, "commission"),
            fee=_number(raw, "fee"),
            magic=_integer(raw, "magic"),
            comment=_text(raw, "comment"),
            time=_epoch(raw, "time", self.server_timezone),
            kind=mt5_api.deal_kind(kind),
        )

    def deals(self, since: datetime, until: datetime | None = None) -> list[Deal]:
        """Deals from ``since`` to ``until`` (default now), times in aware UTC (MetaTrader 5:
        history_deals_get(date_from, date_to), dates positional, in server time).

        The window asked for is [since, until] in server wall-clock time, widened by
        ``DEAL_WINDOW_MARGIN`` on each side so that a deal just made is never missed: the
        answer may hold deals up to that margin outside [since, until].
        """
        until = until or datetime.now(tz=UTC)
        low = to_server_epoch(since - DEAL_WINDOW_MARGIN, self.server_timezone)
        high = to_server_epoch(until + DEAL_WINDOW_MARGIN, self.server_timezone)
        self.connect()
        raw = self.terminal.history_deals_get(max(low, 0), high)
        if raw is None:
            if self.terminal.last_error()[0] == mt5_api.RES_S_OK:
                return []  # the history calls answer None with "Success" for an empty range
            raise self._failure("history_deals_get")
        return [self._deal(d) for d in raw]

    def quote(self, symbol: str) -> Quote:
        """Best bid/ask now (MetaTrader 5: symbol_info_tick), in the quote currency."""
        tick = self._read("symbol_info_tick", symbol, symbol=symbol)
        bid = _number(tick, "bid", positive=True)
        ask = _number(tick, "ask", positive=True)
        if ask < bid:
            raise BrokerBadReply(f"{symbol} ask {ask} below bid {bid}", detail={"field": "ask"})
        return Quote(symbol=symbol, bid=bid, ask=ask,
                     time=_epoch(tick, "time", self.server_timezone))

    def server_utc_offset_minutes(self, now: datetime, symbol: str = "EURUSD") -> int | None:
        """The trade server's offset from UTC in minutes, from the time of ``symbol``'s last
        tick (MetaTrader 5: symbol_info_tick) and the real UTC ``now``, rounded to 30
        minutes; ``None`` when the tick is not fresh (``servertime.detect_utc_offset_minutes``).
        Raises BrokerUnavailable when the tick cannot be read."""
        tick = self._read("symbol_info_tick", symbol)
        return detect_utc_offset_minutes(_integer(tick, "time"), now)

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        """Contract size, tick size/value and volume rules (MetaTrader 5: symbol_info)."""
        info = self._read("symbol_info", symbol, symbol=symbol)
        filling = _integer(info, "filling_mode")
        modes = {name for flag, name in ((mt5_api.SYMBOL_FILLING_FOK, "fok"),
                                         (mt5_api.SYMBOL_FILLING_IOC, "ioc")) if filling & flag}
        calc = _integer(info, "trade_calc_mode")
        loss = _number(info, "trade_tick_value_loss", minimum=0)
        return SymbolSpec(
            symbol=_text(info, "name"),
            digits=_integer(info, "digits"),
            point=_number(info, "point", positive=True),
            contract_size=_number(info, "trade_contract_size", positive=True),
            tick_size=_number(info, "trade_tick_size", positive=True),
            tick_value=_number(info, "trade_tick_value", minimum=0),
            volume_min=_number(info, "volume_min", positive=True),
            volume_step=_number(info, "volume_step", positive=True),
            volume_max=_number(info, "volume_max", positive=True),
            currency_base=_text(info, "currency_base"),
            currency_profit=_text(info, "currency_profit"),
            currency_margin=_text(info, "currency_margin"),
            filling_modes=frozenset(modes),
            calc_mode="forex" if calc == mt5_api.SYMBOL_CALC_MODE_FOREX else "cfd",
            tick_value_loss=loss if loss > 0 else None,
        )

    def _deal_request(self, symbol: str, side: Side, volume: Decimal, tag: str,
                      **extra: Any) -> dict[str, Any]:
        """A market deal (MetaTrader 5: TRADE_ACTION_DEAL) at a fresh quote: buys at the
        ask, sells at the bid, ``DEFAULT_DEVIATION_POINTS``, the bot's magic, ``tag`` as the
        comment (cut to 26 characters) and the symbol's filling mode (FOK if allowed)."""
        spec = self.symbol_spec(symbol)
        quote = self.quote(symbol)
        buying = side is Side.BUY
        return {
            "action": mt5_api.TRADE_ACTION_DEAL,
            "symbol": symbol,
            "volume": float(volume),
            "type": mt5_api.ORDER_TYPE_BUY if buying else mt5_api.ORDER_TYPE_SELL,
            "price": float(quote.ask if buying else quote.bid),
            "deviation": DEFAULT_DEVIATION_POINTS,
            "magic": self.magic,
            "comment": tag[:26],
            "type_time": mt5_api.ORDER_TIME_GTC,
            "type_filling": (mt5_api.ORDER_FILLING_FOK if "fok" in spec.filling_modes
                             else mt5_api.ORDER_FILLING_IOC),
            **extra,
        }

    def close_position(self, ticket: int, volume: Decimal | None, tag: str) -> CloseResult:
        """Close ``volume`` lots (all if None) of position ``ticket`` at a fresh price.

        Sends the opposite deal with ``position=ticket`` (MetaTrader 5: order_send, "closing
        a position"), the symbol's filling mode and ``DEFAULT_DEVIATION_POINTS``. A position
        that is already gone answers done with TRADE_RETCODE_POSITION_CLOSED. ``None`` from
        order_send is ambiguous: the order may or may not have been executed. A fill of
        less than the requested volume (TRADE_RETCODE_DONE_PARTIAL, or DONE with a smaller
        volume) is ``partial``, not done: the rest is still open.
        """
        found = self._read("positions_get", ticket=ticket)
        if len(found) == 0:
            return CloseResult(ticket=ticket, retcode=mt5_api.TRADE_RETCODE_POSITION_CLOSED,
                               comment="position already closed", price=None, volume=None,
                               deal=None, done=True, retryable=False, ambiguous=False)
        position = self._position(found[0])
        closing_side = Side.BUY if position.side is Side.SELL else Side.SELL
        requested = volume if volume is not None else position.volume
        request = self._deal_request(position.symbol, closing_side, requested, tag,
                                     position=ticket)
        result = self.terminal.order_send(request)
        if result is None:
            code, message = self.terminal.last_error()
            return CloseResult(ticket=ticket, retcode=code, comment=message, price=None,
                               volume=None, deal=None, done=False, retryable=False,
                               ambiguous=True)
        return _close_outcome(ticket, requested, result)

    def recent_bars(self, symbol: str, count: int = 2) -> list[Bar]:
        """The last ``count`` H1 bars, oldest first, the last one in progress (MetaTrader 5:
        copy_rates_from_pos). Rows may be records or mappings (a numpy row as a dict)."""
        rows = self._read("copy_rates_from_pos", symbol, mt5_api.TIMEFRAME_H1, 0, count,
                          symbol=symbol)
        bars = []
        for row in rows:
            record = _Record(row) if isinstance(row, dict) else row
            bars.append(Bar(time=_epoch(record, "time", self.server_timezone),
                            open=_number(record, "open", positive=True),
                            close=_number(record, "close", positive=True)))
        if any(b.time >= c.time for b, c in pairwise(bars)):
            raise BrokerBadReply("copy_rates_from_pos answered bars out of order",
                                 detail={"field": "time"})
        return bars

    def margin_required(self, symbol: str, side: Side, volume: Decimal,
                        price: Decimal) -> Decimal:
        """Margin for ``volume`` lots at ``price``, in the account currency (MetaTrader 5:
        order_calc_margin). Raises BrokerUnknownSymbol or BrokerUnavailable."""
        action = mt5_api.ORDER_TYPE_BUY if side is Side.BUY else mt5_api.ORDER_TYPE_SELL
        result = self._read("order_calc_margin", action, symbol, float(volume), float(price),
                            symbol=symbol)
        if isinstance(result, bool) or not isinstance(result, (int, float)) or \
                not math.isfinite(result) or result < 0:
            raise BrokerBadReply(f"order_calc_margin answered {result!r}",
                                 detail={"field": "margin"})
        return Decimal(repr(result)) if isinstance(result, float) else Decimal(result)

    def open_position(self, symbol: str, side: Side, volume: Decimal, *, sl: Decimal | None,
                      tp: Decimal | None, tag: str) -> OrderResult:
        """Open a market position of ``volume`` lots with the bot's magic and ``tag`` as the
        comment (MetaTrader 5: order_send, TRADE_ACTION_DEAL), at a fresh quote with
        ``DEFAULT_DEVIATION_POINTS``. ``None`` from order_send is ambiguous."""
        request = self._deal_request(
            symbol, side, volume, tag,
            sl=float(sl) if sl is not None else 0.0, tp=float(tp) if tp is not None else 0.0)
        result = self.terminal.order_send(request)
        if result is None:
            code, message = self.terminal.last_error()
            return OrderResult(retcode=code, comment=message, ticket=None, price=None,
                               volume=None, done=False, retryable=False, ambiguous=True)
        retcode = _integer(result, "retcode")
        done = retcode in (mt5_api.TRADE_RETCODE_DONE, mt5_api.TRADE_RETCODE_DONE_PARTIAL)
        return OrderResult(
            retcode=retcode,
            comment=_text(result, "comment"),
            ticket=(_integer(result, "order") or None) if done else None,
            price=_number(result, "price", minimum=0) if done else None,
            volume=_number(result, "volume", minimum=0) if done else None,
            done=done,
            retryable=retcode in mt5_api.RETRYABLE_RETCODES,
            ambiguous=retcode in mt5_api.AMBIGUOUS_RETCODES,
        )
