"""A simulated MetaTrader 5 terminal and trade server, with the ``MetaTrader5`` package's API.

``SimTerminal`` answers the same calls as the real (Windows-only) ``MetaTrader5`` module and
returns the same namedtuples (``brokers.mt5_api``) with float/int fields; internally every
price and money figure is a ``Decimal``. Prices are replayed EURUSD H1 bars
(``brokers.sim.prices``); one terminal serves many accounts (the trade server side) but,
like the real terminal, holds ONE logged-in account at a time.

On every public call the terminal first catches up with the replay clock: for every bar
passed since the last call, and then for the part of the current bar, it fills stop losses
and take profits (a gap past a level fills at the bar's OPEN; inside one bar a SL wins over
a TP, conservatively) and then applies the stop-out (MetaTrader 5: close the most losing
position while margin level <= margin_so_so) at the end of each bar and at the current price.

Calls are held to the real module's signatures (``brokers.mt5_signatures``): a call outside
them (a keyword date, a positional ``ticket``, a missing argument) answers what the real
module answers, ``None`` (``False`` from initialize/login) with last_error
RES_E_INVALID_PARAMS and the real message, before anything else happens.

Trade server time: with ``server_utc_offset_hours`` every time the terminal reports
(positions, deals, ticks, symbol info, bars) is server wall-clock time, that many hours
ahead of UTC, and history_deals_get reads its dates the same way, as on a real server.

Methods named ``sim_*`` are simulation admin calls, not in the real API: they act on any
account without changing the logged-in one, and are never hit by injected faults. They are
documented in ``brokers/sim/README.md``.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any, TypeVar, cast

from brokers import mt5_api as mt5
from brokers.mt5_signatures import SIGNATURES, call_error
from brokers.sim.book import (
    COMMENT_MAX,
    COMPANY,
    POINT,
    SYMBOL,
    VOLUME_MIN,
    VOLUME_STEP,
    Book,
    Quote,
    SimAccount,
    SimDeal,
    SimPosition,
    account_tuple,
    deal_tuple,
    epoch,
    margin_required,
    matches_group,
    money,
    position_tuple,
    profit_usd,
    symbol_tuple,
    tick_tuple,
    usd_to_account,
)
from brokers.sim.faults import Fault, FaultQueue
from brokers.sim.prices import Bar, ReplayClock, bar_at, load_bars
from brokers.sim.rules import (
    ERROR_MESSAGES,
    FAULT_ERRORS,
    RETCODE_COMMENTS,
    Request,
    parse_request,
    refusal,
    stop_hit,
    to_decimal,
    to_level,
    volume_ok,
)

__all__ = ["SimAccount", "SimTerminal"]

F = TypeVar("F", bound=Callable[..., Any])

# sim_balance_operation kinds -> ENUM_DEAL_TYPE
BALANCE_DEAL_TYPES = {
    "balance": mt5.DEAL_TYPE_BALANCE,
    "credit": mt5.DEAL_TYPE_CREDIT,
    "charge": mt5.DEAL_TYPE_CHARGE,
    "correction": mt5.DEAL_TYPE_CORRECTION,
    "bonus": mt5.DEAL_TYPE_BONUS,
}
T = TypeVar("T")


def ticket_seed() -> int:
    """A first ticket above any a previous run of the simulated server issued: milliseconds
    since 1970 (about 1.8e12, within MetaTrader 5's 64-bit tickets). A run would have to
    issue more than 1,000 tickets a second on average to reach the next run's seed."""
    return int(time.time() * 1000)


def _api(*, needs: str = "login", failure: Any = None) -> Callable[[F], F]:
    """Wrap a MetaTrader5 API method: lock, reset last_error, hold the call to the real
    signature (``brokers.mt5_signatures``), apply call faults, require an initialized
    terminal (``needs`` "init") or a logged-in account ("login"), catch up with the replay,
    then run the method. ``failure`` is what a failed call returns."""

    def decorate(method: F) -> F:
        name = method.__name__
        forms = SIGNATURES[name]  # a method the table does not know cannot be served

        @functools.wraps(method)
        def wrapper(self: SimTerminal, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._error = (mt5.RES_S_OK, ERROR_MESSAGES[mt5.RES_S_OK])
                refused = call_error(forms, args, kwargs)
                if refused is not None:
                    self._error = (mt5.RES_E_INVALID_PARAMS, refused)
                    return failure
                target = kwargs.get("login")
                if name == "login" and args:
                    target = args[0]
                fault = self._faults.take(name, target or self._session, "call")
                if fault is not None:
                    if fault.kind in ("timeout", "delay"):
                        self._sleep(fault.delay)
                    if fault.kind != "delay":
                        return self._fail(FAULT_ERRORS[fault.kind], failure)
                if needs in ("init", "login") and not self._initialized:
                    return self._fail(mt5.RES_E_INTERNAL_FAIL_CONNECT, failure)
                if needs == "login" and self._session is None:
                    return self._fail(mt5.RES_E_FAIL, failure)
                self._evaluate()
                return method(self, *args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _admin(method: F) -> F:
    """Wrap a simulation admin method: lock and catch up with the replay; no faults."""

    @functools.wraps(method)
    def wrapper(self: SimTerminal, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._evaluate()
            return method(self, *args, **kwargs)

    return cast(F, wrapper)


class SimTerminal:
    """A MetaTrader 5 terminal + trade server simulation. See the module docstring.

    ``spread_points`` is the fixed EURUSD spread in points (0.00001): ask = bid + spread.
    ``seed`` only drives cosmetic randomness (``terminal_info().ping_last``).
    ``server_utc_offset_hours`` is the trade server's offset from UTC (e.g. 2.0 for a GMT+2
    server): reported times are shifted by it (see the module docstring).
    ``first_ticket``: tickets (orders, deals, positions) are issued above it. A real server
    never reissues a ticket, so a terminal that restarts must start above every ticket it
    issued before: ``ticket_seed()`` gives one from the clock (the bridge's ``--sim`` uses
    it); the default keeps tests deterministic.
    ``login_ms``: milliseconds a login switch costs, as a real terminal spends them
    reconnecting to the trade server as another account. 0 here (in-process unit tests
    switch at once); the bridge's ``--sim`` terminal, the demo's and the benches', defaults
    to 150 (``--login-ms``, ``runtime.build_demo_terminal``). Every ``login`` (or
    ``initialize(login=...)``) to an account other than the one logged in pays it, a
    refused one too; a login to the account already logged in, with its password, costs
    nothing (the real terminal keeps its session).
    ``sleep`` is how the terminal waits, in seconds (``time.sleep``; tests inject a fake to
    measure the waits without wall-clock timing). Faults' delays wait through it too.
    Every uppercase constant of ``brokers.mt5_api`` is also a class attribute (set at runtime
    below, so type checkers do not see them: typed code should use ``brokers.mt5_api``).
    """

    def __init__(self, *, bars: list[Bar] | None = None, clock: ReplayClock | None = None,
                 accounts: Iterable[SimAccount] = (), spread_points: int = 12,
                 seed: int = 0, server_utc_offset_hours: float = 0.0,
                 first_ticket: int = 1_000_000, login_ms: float = 0.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        self._bars = bars if bars is not None else load_bars()
        if not self._bars:
            raise ValueError("no bars to replay")
        self._clock = clock or ReplayClock(3600.0, manual=True)
        if self._clock.n_bars is None:
            self._clock.n_bars = len(self._bars)
        self._spread_points = spread_points
        self._spread = POINT * spread_points
        self.server_utc_offset_hours = float(server_utc_offset_hours)
        if not -12 <= self.server_utc_offset_hours <= 14:
            raise ValueError("server_utc_offset_hours must be within -12..14")
        self._shift = timedelta(hours=self.server_utc_offset_hours)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        if not login_ms >= 0:
            raise ValueError(f"login_ms must be 0 or more, got {login_ms}")
        self.login_ms = float(login_ms)
        self._sleep: Callable[[float], None] = sleep or time.sleep
        self._faults = FaultQueue()
        self._books: dict[int, Book] = {}
        self._last_ticket = first_ticket
        self._request_id = 0
        self._initialized = False
        self._session: int | None = None
        self._read_only = False
        self._error: tuple[int, str] = (mt5.RES_S_OK, ERROR_MESSAGES[mt5.RES_S_OK])
        self._evaluated = self._clock.position()
        self._last_evaluation_deals = 0
        if self._evaluated[0] >= len(self._bars) and not self._clock.loop:
            raise ValueError("the clock starts past the last bar")
        self._quote = self._quote_at(*self._evaluated)
        for spec in accounts:
            self.sim_add_account(spec)

    # ----------------------------------------------------------------- the MetaTrader5 API

    @_api(needs="none", failure=False)
    def initialize(self, path: str | None = None, /, *, login: int | None = None,
                   password: str | None = None, server: str | None = None,
                   timeout: int | None = None, portable: bool = False) -> bool:
        """Start the terminal; with ``login`` also log in (MetaTrader5.initialize)."""
        self._initialized = True
        if login is None:
            return True
        return self._login(login, password or "", server or "")

    @_api(needs="init", failure=False)
    def login(self, login: int, /, *, password: str = "", server: str = "",
              timeout: int = 60000) -> bool:
        """Log in to ``login``; the master password trades, the investor password only reads.
        An empty ``server`` means the account's own server. A failed login logs out."""
        return self._login(login, password, server)

    @_api(needs="none")
    def shutdown(self) -> None:
        """Close the terminal session (the simulated server keeps its accounts)."""
        self._initialized = False
        self._session = None
        self._read_only = False

    def last_error(self) -> tuple[int, str]:
        """(code, message) of the last call, RES_S_OK after a success."""
        with self._lock:
            return self._error

    @_api(needs="init")
    def version(self) -> tuple[int, int, str] | None:
        """(terminal version, build, build date), like MetaTrader5.version()."""
        return (500, 4000, "14 Mar 2024")

    @_api(needs="init")
    def terminal_info(self) -> mt5.TerminalInfo | None:
        return mt5.TerminalInfo(
            connected=self._session is not None, trade_allowed=True,
            name="SimTerminal (MetaTrader 5 simulation)", company=COMPANY, path="sim://",
            build=4000, ping_last=self._rng.randint(20_000, 60_000),  # microseconds
        )

    @_api()
    def account_info(self) -> mt5.AccountInfo | None:
        """The logged-in account; money in its deposit currency."""
        return account_tuple(self._book(), self._quote, trade_allowed=not self._read_only)

    @_api()
    def positions_get(self, *, symbol: str | None = None, group: str | None = None,
                      ticket: int | None = None) -> tuple[mt5.TradePosition, ...] | None:
        """Open positions of the logged-in account, by ticket; () when there are none."""
        book = self._book()
        return tuple(
            position_tuple(p, self._quote, book.currency, self._shift)
            for p in sorted(book.positions.values(), key=lambda p: p.ticket)
            if (symbol is None or p.symbol == symbol) and matches_group(p.symbol, group)
            and (ticket is None or p.ticket == ticket)
        )

    @_api()
    def positions_total(self) -> int | None:
        return len(self._book().positions)

    @_api()
    def history_deals_get(self, date_from: datetime | int | None = None,
                          date_to: datetime | int | None = None, /, *,
                          group: str | None = None, ticket: int | None = None,
                          position: int | None = None) -> tuple[mt5.TradeDeal, ...] | None:
        """Deals of the logged-in account, as the real module takes them: (date_from,
        date_to[, group=]) with date_from <= time <= date_to, or (ticket=) the deals of one
        ORDER ticket, or (position=) those of one position id. Dates are server wall-clock
        times (datetimes or epoch seconds, whole seconds; a naive datetime is read as is)."""
        low, high = self._server_epoch(date_from), self._server_epoch(date_to)
        return tuple(
            deal_tuple(d, self._shift) for d in self._book().deals
            if (low is None or epoch(d.time, self._shift) >= low)
            and (high is None or epoch(d.time, self._shift) <= high)
            and matches_group(d.symbol, group) and (ticket is None or d.order == ticket)
            and (position is None or d.position_id == position)
        )

    @_api()
    def symbol_info(self, symbol: str) -> mt5.SymbolInfo | None:
        """EURUSD's specification; tick values in the logged-in account's currency."""
        if symbol != SYMBOL:
            return self._fail(mt5.RES_E_NOT_FOUND, None)
        return symbol_tuple(self._quote, self._book().currency, self._spread_points,
                            self._shift)

    @_api()
    def order_calc_margin(self, action: int, symbol: str, volume: float,
                          price: float) -> float | None:
        """Margin for ``volume`` lots in the logged-in account's currency (MetaTrader 5:
        order_calc_margin; forex: lots × contract size / leverage, converted)."""
        if symbol != SYMBOL:
            return self._fail(mt5.RES_E_NOT_FOUND, None)
        if action not in (mt5.ORDER_TYPE_BUY, mt5.ORDER_TYPE_SELL) or not volume > 0:
            return self._fail(mt5.RES_E_INVALID_PARAMS, None)
        book = self._book()
        margin = margin_required(Decimal(str(volume)), book.spec.leverage, book.currency,
                                 self._quote.bid)
        return float(money(margin))

    @_api()
    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int,
                            count: int) -> tuple[mt5.Rate, ...] | None:
        """H1 bars ending ``start_pos`` bars back (0 = the bar in progress, whose close is
        the current bid), oldest first (MetaTrader 5: copy_rates_from_pos). Only H1."""
        if symbol != SYMBOL:
            return self._fail(mt5.RES_E_NOT_FOUND, None)
        if timeframe != mt5.TIMEFRAME_H1 or start_pos < 0 or not 0 < count <= 5000:
            return self._fail(mt5.RES_E_INVALID_PARAMS, None)
        current, _ = self._clock.position()
        rates = []
        for counter in range(max(current - start_pos - count + 1, 0), current - start_pos + 1):
            bar = bar_at(self._bars, counter)
            close = self._quote.bid if counter == current else bar.close
            rates.append(mt5.Rate(time=epoch(bar.time, self._shift), open=float(bar.open),
                                  high=float(bar.high), low=float(bar.low), close=float(close),
                                  tick_volume=bar.volume, spread=self._spread_points,
                                  real_volume=0))
        return tuple(rates)

    @_api()
    def symbol_info_tick(self, symbol: str) -> mt5.Tick | None:
        if symbol != SYMBOL:
            return self._fail(mt5.RES_E_NOT_FOUND, None)
        return tick_tuple(self._quote, self._shift)

    @_api()
    def order_send(self, request: dict[str, Any]) -> mt5.OrderSendResult | None:
        """Execute a market deal (TRADE_ACTION_DEAL): open, or close ``position`` (partly
        when ``volume`` is below the position's). A refused request changes nothing and
        returns its retcode; a malformed one returns None (RES_E_INVALID_PARAMS)."""
        parsed = parse_request(request)
        if parsed is None:
            return self._fail(mt5.RES_E_INVALID_PARAMS, None)
        self._request_id += 1
        book, quote = self._book(), self._quote
        position = book.positions.get(parsed.position) if parsed.position else None
        market = quote.ask if parsed.type == mt5.ORDER_TYPE_BUY else quote.bid
        retcode = refusal(book, parsed, position, quote, read_only=self._read_only)
        if retcode is not None:
            return self._result(retcode, request, quote)
        fault = self._faults.take("order_send", self._session, "order")
        volume, price = parsed.volume, market  # within the deviation: filled at the market
        retcode = mt5.TRADE_RETCODE_DONE
        if fault is not None and fault.kind in ("requote", "reject"):
            code = mt5.TRADE_RETCODE_REQUOTE if fault.kind == "requote" else \
                mt5.TRADE_RETCODE_REJECT
            return self._result(code, request, quote)
        if fault is not None and fault.kind == "partial_fill":
            volume = (volume * Decimal(str(fault.fraction)) / VOLUME_STEP).to_integral_value(
                ROUND_FLOOR) * VOLUME_STEP
            if volume < VOLUME_MIN:
                return self._result(mt5.TRADE_RETCODE_REJECT, request, quote)
            retcode = mt5.TRADE_RETCODE_DONE_PARTIAL
        if fault is not None and fault.kind == "slippage":
            worse = POINT * fault.points
            price = price + worse if parsed.type == mt5.ORDER_TYPE_BUY else price - worse
        reason = mt5.DEAL_REASON_EXPERT if parsed.magic else mt5.DEAL_REASON_CLIENT
        if position is not None:
            order, deal = self._close(book, position, volume, price, reason, quote.time,
                                      parsed.magic, parsed.comment)
        else:
            order, deal = self._open(book, parsed.type, volume, price, parsed.sl, parsed.tp,
                                     parsed.magic, parsed.comment, reason, quote.time)
        if fault is not None and fault.kind == "lost_reply":
            return self._fail(mt5.RES_E_INTERNAL_FAIL_TIMEOUT, None)
        return self._result(retcode, request, quote, deal=deal, order=order, volume=volume,
                            price=price)

    # ------------------------------------------------------------- simulation admin calls

    @_admin
    def sim_add_account(self, spec: SimAccount) -> None:
        """Create an account with a balance deal of ``spec.balance`` (its initial deposit)."""
        if spec.login in self._books:
            raise ValueError(f"account {spec.login} already exists")
        book = Book(spec=spec, balance=spec.balance)
        book.deals.append(SimDeal(
            ticket=self._next_ticket(), order=0, time=self._quote.time,
            type=mt5.DEAL_TYPE_BALANCE, entry=mt5.DEAL_ENTRY_IN, magic=0, position_id=0,
            reason=mt5.DEAL_REASON_CLIENT, volume=Decimal(0), price=Decimal(0),
            profit=spec.balance, symbol="", comment="Initial deposit",
        ))
        self._books[spec.login] = book

    @_admin
    def sim_open(self, login: int, symbol: str, side: str, volume: Decimal | float | str, *,
                 sl: Decimal | float | None = None, tp: Decimal | float | None = None,
                 magic: int = 0, comment: str = "", reason: int | None = None,
                 price: Decimal | float | None = None) -> int:
        """Open a position on any account at market (ask for a buy, bid for a sell) or at
        ``price``; returns the position ticket. ``reason`` defaults to DEAL_REASON_EXPERT
        when ``magic`` is set, else DEAL_REASON_CLIENT. Raises ValueError when refused
        (unknown account or symbol, bad side, volume or stops, not enough free margin)."""
        book = self._admin_book(login)
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
        order_type = mt5.ORDER_TYPE_BUY if side == "buy" else mt5.ORDER_TYPE_SELL
        market = self._quote.ask if side == "buy" else self._quote.bid
        request = Request(
            action=mt5.TRADE_ACTION_DEAL, symbol=symbol, volume=to_decimal(volume),
            type=order_type, price=Decimal(0), sl=to_level(sl), tp=to_level(tp), deviation=0,
            magic=magic,
            comment=comment, position=0, type_filling=mt5.ORDER_FILLING_FOK,
        )
        retcode = refusal(book, request, None, self._quote, read_only=False)
        if retcode is not None:
            raise ValueError(f"sim_open refused: {retcode} {RETCODE_COMMENTS[retcode]}")
        if reason is None:
            reason = mt5.DEAL_REASON_EXPERT if magic else mt5.DEAL_REASON_CLIENT
        fill = market if price is None else to_decimal(price)
        order, _ = self._open(book, order_type, request.volume, fill, request.sl, request.tp,
                              magic, comment, reason, self._quote.time)
        return order

    @_admin
    def sim_close(self, login: int, ticket: int, *, reason: int = mt5.DEAL_REASON_CLIENT,
                  volume: Decimal | float | str | None = None, magic: int | None = None) -> int:
        """Close (``volume`` of) a position at market, as a person in the desktop terminal
        would by default; returns the deal ticket. ``magic`` defaults to the position's
        magic, or 0 for a DEAL_REASON_CLIENT close. Raises ValueError when refused."""
        book = self._admin_book(login)
        position = book.positions.get(ticket)
        if position is None:
            raise ValueError(f"account {login} has no open position {ticket}")
        amount = position.volume if volume is None else to_decimal(volume)
        if not volume_ok(amount) or amount > position.volume:
            raise ValueError(f"invalid close volume {amount} for position {ticket}")
        if magic is None:
            magic = 0 if reason == mt5.DEAL_REASON_CLIENT else position.magic
        _, deal = self._close(book, position, amount, position.close_price(self._quote), reason,
                              self._quote.time, magic, "")
        return deal

    @_admin
    def sim_balance_operation(self, login: int, amount: Decimal | float | str, comment: str,
                              kind: str = "balance") -> int:
        """Book a balance operation on any account; returns its deal ticket.

        ``amount`` is in the deposit currency, rounded to cents: positive pays in, negative
        takes out. ``kind`` picks the deal type: "balance" (DEAL_TYPE_BALANCE: a deposit or
        a withdrawal), "credit" (DEAL_TYPE_CREDIT: moves the account's credit, not its
        balance), "charge", "correction" or "bonus" (DEAL_TYPE_CHARGE / _CORRECTION /
        _BONUS: move the balance). The deal is an IN deal with position_id 0, no symbol and
        profit = amount, as MetaTrader 5 books one. Raises ValueError for an unknown account
        or kind, a zero amount, a withdrawal above the free margin or a credit below zero.
        """
        book = self._admin_book(login)
        if kind not in BALANCE_DEAL_TYPES:
            raise ValueError(f"kind must be one of {sorted(BALANCE_DEAL_TYPES)}, not {kind!r}")
        value = money(to_decimal(amount))
        if not value:
            raise ValueError("a balance operation needs a non-zero amount")
        if value < 0 and -value > book.figures(self._quote).margin_free:
            raise ValueError(f"withdrawal of {-value} exceeds the free margin of {login}")
        if kind == "credit" and book.credit + value < 0:
            raise ValueError(f"account {login} has only {book.credit} credit")
        if kind == "credit":
            book.credit += value
        else:
            book.balance += value
        ticket = self._next_ticket()
        book.deals.append(SimDeal(
            ticket=ticket, order=0, time=self._quote.time, type=BALANCE_DEAL_TYPES[kind],
            entry=mt5.DEAL_ENTRY_IN, magic=0, position_id=0, reason=mt5.DEAL_REASON_CLIENT,
            volume=Decimal(0), price=Decimal(0), profit=value, symbol="",
            comment=comment[:COMMENT_MAX],
        ))
        return ticket

    @_admin
    def sim_reticket(self, login: int, ticket: int) -> int:
        """Give open position ``ticket`` a new ticket and return it, keeping its identifier
        (as servers that re-open positions on swap do): positions_get reports the new
        ticket, deals keep position_id = identifier. Raises ValueError when there is no
        such position."""
        book = self._admin_book(login)
        position = book.positions.pop(ticket, None)
        if position is None:
            raise ValueError(f"account {login} has no open position {ticket}")
        position.ticket = self._next_ticket()
        book.positions[position.ticket] = position
        return position.ticket

    @_admin
    def sim_advance(self, bars: int = 1, *, fraction: float = 0.0) -> int:
        """Move the clock to the start of the bar ``bars`` ahead (``bars=0``: stay in this
        bar), then ``fraction`` of a bar further, and process the time passed; returns the
        number of SL/TP/stop-out deals made."""
        if bars:
            self._clock.advance(bars)
        if fraction:
            self._clock.advance_fraction(fraction)
        return self._evaluate()

    @_admin
    def sim_tick(self) -> int:
        """Process the time passed; returns the number of SL/TP/stop-out deals made.
        (The catch-up itself ran in the wrapper; a second run finds nothing new.)"""
        return self._last_evaluation_deals

    @_admin
    def sim_quote(self, symbol: str = SYMBOL) -> tuple[Decimal, Decimal]:
        """(bid, ask) now, in USD per EUR."""
        if symbol != SYMBOL:
            raise ValueError(f"unknown symbol {symbol!r}")
        return self._quote.bid, self._quote.ask

    @_admin
    def sim_positions(self, login: int) -> tuple[mt5.TradePosition, ...]:
        """Open positions of any account, as positions_get() would return them."""
        book = self._admin_book(login)
        return tuple(position_tuple(p, self._quote, book.currency, self._shift)
                     for p in sorted(book.positions.values(), key=lambda p: p.ticket))

    @_admin
    def sim_account_info(self, login: int) -> mt5.AccountInfo:
        """Figures of any account, as account_info() would return them."""
        return account_tuple(self._admin_book(login), self._quote, trade_allowed=True)

    @_admin
    def sim_logins(self) -> list[int]:
        return sorted(self._books)

    @_admin
    def sim_state(self) -> dict[str, Any]:
        """A JSON-safe summary of the simulation."""
        counter, fraction = self._evaluated
        finished = not self._clock.loop and counter == len(self._bars) - 1 and fraction >= 1.0
        return {
            "symbol": SYMBOL, "bar_index": counter % len(self._bars), "bar_counter": counter,
            "bar_fraction": round(fraction, 6), "bars_total": len(self._bars),
            "bar_time": bar_at(self._bars, counter).time.isoformat(),
            "server_time": self._quote.time.isoformat(), "bid": float(self._quote.bid),
            "ask": float(self._quote.ask), "spread_points": self._spread_points,
            "finished": finished, "accounts": len(self._books),
            "positions": sum(len(b.positions) for b in self._books.values()),
            "deals": sum(len(b.deals) for b in self._books.values()),
            "logged_in": self._session, "pending_faults": len(self._faults),
            "server_utc_offset_hours": self.server_utc_offset_hours,
            "login_ms": self.login_ms,
        }

    def sim_inject_fault(self, kind: str, *, method: str | None = None, count: int = 1,
                         login: int | None = None, delay: float = 0.0, points: int = 0,
                         fraction: float = 0.5) -> None:
        """Queue a fault (kinds and matching: ``brokers.sim.faults``)."""
        fault = Fault(kind, method, count, login, delay, points, fraction)
        with self._lock:
            self._faults.add(fault)

    def sim_clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --------------------------------------------------------------------------- internals

    def _fail(self, code: int, failure: T) -> T:
        """Record ``code`` for last_error() and return ``failure``."""
        self._error = (code, ERROR_MESSAGES.get(code, "Error"))
        return failure

    def _login(self, login: int, password: str, server: str) -> bool:
        book = self._books.get(login)
        spec = book.spec if book else None
        refused = spec is None or bool(server and server != spec.server) or \
            password not in (spec.password, spec.investor_password)
        if self.login_ms and (refused or login != self._session):
            # the switch: the terminal reconnects to the trade server as ``login``; under
            # the lock, as a real terminal does one thing at a time
            self._sleep(self.login_ms / 1000)
        if refused or spec is None:
            self._session, self._read_only = None, False
            return bool(self._fail(mt5.RES_E_AUTH_FAILED, False))
        self._session = login
        self._read_only = password != spec.password
        return True

    def _book(self) -> Book:
        assert self._session is not None
        return self._books[self._session]

    def _admin_book(self, login: int) -> Book:
        book = self._books.get(login)
        if book is None:
            raise ValueError(f"unknown account {login}")
        return book

    def _next_ticket(self) -> int:
        self._last_ticket += 1
        return self._last_ticket

    @staticmethod
    def _server_epoch(value: datetime | int | float | None) -> int | None:
        """A date argument's epoch seconds, read as server wall-clock time like the real
        module reads them (a naive datetime counts as UTC here, so a naive server wall-clock
        time works; None: no bound; the signature check lets nothing else through)."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return epoch(value if value.tzinfo else value.replace(tzinfo=UTC))
        return int(value)

    def _quote_at(self, counter: int, fraction: float) -> Quote:
        bar = bar_at(self._bars, counter)
        bid = bar.price_at(fraction)
        when = bar.time + timedelta(milliseconds=round(fraction * 3_600_000))
        return Quote(bid=bid, ask=bid + self._spread, time=when)

    def _result(self, retcode: int, request: Mapping[str, Any], quote: Quote, *,
                deal: int = 0, order: int = 0, volume: Decimal = Decimal(0),
                price: Decimal = Decimal(0)) -> mt5.OrderSendResult:
        quoted = retcode in (mt5.TRADE_RETCODE_REQUOTE, mt5.TRADE_RETCODE_DONE,
                             mt5.TRADE_RETCODE_DONE_PARTIAL)
        return mt5.OrderSendResult(
            retcode=retcode, deal=deal, order=order, volume=float(volume), price=float(price),
            bid=float(quote.bid) if quoted else 0.0, ask=float(quote.ask) if quoted else 0.0,
            comment=RETCODE_COMMENTS.get(retcode, ""), request_id=self._request_id,
            retcode_external=0, request=dict(request),
        )

    def _open(self, book: Book, order_type: int, volume: Decimal, price: Decimal,
              sl: Decimal | None, tp: Decimal | None, magic: int, comment: str, reason: int,
              when: datetime) -> tuple[int, int]:
        """Open a position: an order and an IN deal; the position ticket is the order's.
        Returns (order ticket, deal ticket)."""
        order, deal = self._next_ticket(), self._next_ticket()
        comment = comment[:COMMENT_MAX]
        position_type = mt5.POSITION_TYPE_BUY if order_type == mt5.ORDER_TYPE_BUY else \
            mt5.POSITION_TYPE_SELL
        # ENUM_POSITION_REASON shares the values 0..3 with ENUM_DEAL_REASON
        position_reason = reason if reason <= mt5.POSITION_REASON_EXPERT else \
            mt5.POSITION_REASON_CLIENT
        book.positions[order] = SimPosition(order, position_type, volume, price, sl, tp, magic,
                                            comment, position_reason, when, when)
        book.deals.append(SimDeal(
            ticket=deal, order=order, time=when, type=order_type, entry=mt5.DEAL_ENTRY_IN,
            magic=magic, position_id=order, reason=reason, volume=volume, price=price,
            profit=Decimal(0), symbol=SYMBOL, comment=comment,
        ))
        return order, deal

    def _close(self, book: Book, position: SimPosition, volume: Decimal, price: Decimal,
               reason: int, when: datetime, magic: int, comment: str) -> tuple[int, int]:
        """Close ``volume`` of a position at ``price``: an OUT deal whose profit (deposit
        currency, MetaTrader 5 forex formula) is credited to the balance.
        Returns (order ticket, deal ticket)."""
        order, deal = self._next_ticket(), self._next_ticket()
        eurusd = price if position.is_buy else price - self._spread  # the bid at the fill
        profit = money(usd_to_account(
            profit_usd(position.type, volume, position.price_open, price), book.currency,
            eurusd))
        book.balance += profit
        book.deals.append(SimDeal(
            ticket=deal, order=order, time=when,
            type=mt5.DEAL_TYPE_SELL if position.is_buy else mt5.DEAL_TYPE_BUY,
            entry=mt5.DEAL_ENTRY_OUT, magic=magic, position_id=position.identifier,
            reason=reason,
            volume=volume, price=price, profit=profit, symbol=position.symbol,
            comment=comment[:COMMENT_MAX],
        ))
        if volume >= position.volume:
            del book.positions[position.ticket]
        else:
            position.volume -= volume
            position.time_update = when
        return order, deal

    # ------------------------------------------------------------------ replay evaluation

    def _evaluate(self) -> int:
        """Catch up with the clock: SL/TP and stop-out on every bar segment passed since the
        last evaluation. Returns the number of deals made."""
        now = self._clock.position()
        (c0, f0), (c1, f1) = self._evaluated, now
        made = 0
        if now > self._evaluated:
            if c1 == c0:
                made += self._run_segment(c0, f0, f1, opening=False)
            else:
                if f0 < 1.0:
                    made += self._run_segment(c0, f0, 1.0, opening=False)
                for counter in range(c0 + 1, c1):
                    made += self._run_segment(counter, 0.0, 1.0, opening=True)
                made += self._run_segment(c1, 0.0, f1, opening=True)
            self._evaluated = now
            self._quote = self._quote_at(c1, f1)
        self._last_evaluation_deals = made
        return made

    def _run_segment(self, counter: int, f0: float, f1: float, *, opening: bool) -> int:
        """One stretch of one bar's price path: stops first, then the stop-out at its end."""
        bar = bar_at(self._bars, counter)
        low, high = bar.range_between(f0, f1)
        when = self._quote_at(counter, f0).time  # == the bar's time when the bar starts here
        made = 0
        for book in self._books.values():
            for position in list(book.positions.values()):
                hit = stop_hit(position, bar.open if opening else None, low, high,
                                self._spread)
                if hit is not None:
                    price, reason = hit
                    level = position.sl if reason == mt5.DEAL_REASON_SL else position.tp
                    tag = "sl" if reason == mt5.DEAL_REASON_SL else "tp"
                    self._close(book, position, position.volume, price, reason, when,
                                position.magic, f"[{tag} {level:.5f}]")
                    made += 1
        return made + self._stop_out(self._quote_at(counter, f1))

    def _stop_out(self, quote: Quote) -> int:
        """MetaTrader 5 stop-out: while margin > 0 and margin level <= margin_so_so, close
        the most losing position at market (DEAL_REASON_SO)."""
        made = 0
        for book in self._books.values():
            while book.positions:
                figures = book.figures(quote)
                if figures.margin <= 0 or figures.margin_level > book.spec.margin_so_so:
                    break
                victim = book.most_losing(quote)
                self._close(book, victim, victim.volume, victim.close_price(quote),
                            mt5.DEAL_REASON_SO, quote.time, victim.magic,
                            f"[so {figures.margin_level:.2f}%]")
                made += 1
        return made


for _name in dir(mt5):
    if _name.isupper():
        setattr(SimTerminal, _name, getattr(mt5, _name))
del _name
