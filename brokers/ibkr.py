"""The ibkr adapter: a ``BrokerGateway`` for one Interactive Brokers account, over ``ib_async``.

IB Gateway (or TWS) holds the login; the adapter connects to it with a host, a port and a
clientId, and speaks for one account id (``U1234567``, ``DU1234567``) among the gateway's
managed accounts. It is the one place that turns IB's replies into this project's
dataclasses and errors, in the manner of ``brokers.mt5``:

- A failed, timed-out or partial read raises (``BrokerUnavailable``, ``BrokerTimeout``,
  ``BrokerBadReply``): the account is *unknown*, never flat. ``[]`` from ``positions()``
  means the gateway listed no position for the account and its portfolio agreed.
- Every field is validated: a missing, non-finite or out-of-range value is
  ``BrokerBadReply`` naming the field in IB's words (``detail["field"]``).
- IB error codes map onto ``brokers.errors``: 200 (no security definition) →
  ``BrokerUnknownSymbol``; 100/420 and 162 saying "pacing" (pacing violations) and 322
  (too many subscriptions) → ``BrokerTimeout``, retry later; 162 "no data", 326 (clientId
  in use), 502/504 (not connected), 1100/1300/2110 (connectivity) → ``BrokerUnavailable``;
  an order rejected (201/203) is a ``CloseResult``/``OrderResult`` that is neither done,
  retryable nor ambiguous, as MetaTrader 5's TRADE_RETCODE_REJECT is.

Mapping (TWS API names):

- account: ``NetLiquidation`` → equity, ``TotalCashValue`` → balance, ``MaintMarginReq`` →
  margin, ``AvailableFunds`` → free margin, ``UnrealizedPnL`` → profit, in the base
  currency (the currency those tags carry). IB sets margin per contract, not per account:
  ``leverage`` is 1; IB liquidates when equity falls below the maintenance margin, so the
  stop-out level is 100 %. Note: for stocks, ``TotalCashValue`` + unrealized P&L is not
  ``NetLiquidation`` (the shares' cost is not cash any more).
- positions: ``ticket`` and ``identifier`` are the contract's ``conId`` (IB keeps one
  position per account and contract); the signed quantity gives side and volume (shares or
  units of the base currency); ``price_open`` = ``avgCost`` ÷ multiplier (IB's avgCost
  includes the multiplier and the commission); ``price_current`` = ``marketPrice``;
  ``profit`` = ``unrealizedPNL`` at the account's ``ExchangeRate``; ``opened_at`` and
  ``comment`` (the ``orderRef``) come from the execution that opened it.
- deals: one per execution, with its commission report. ``CommissionReport.realizedPNL``
  is the realized P&L (IB's figure is net of both legs' commissions, so ``net_profit``
  equals it); an opening execution carries no realized P&L (UNSET). ``ticket`` is a stable
  63-bit number derived from the ``execId``.
- margin_required: a what-if market order (``OrderState.initMarginChange``); recent_bars:
  one-hour bars from reqHistoricalData.
- close: a market order of the opposite side for the position's quantity, ``orderRef`` =
  the close tag. Before sending, open orders are looked up by ``orderRef``: while one is
  working, nothing is sent again (the answer is ambiguous), so a retried ``CloseRequest``
  never closes twice.

Threads: ``ib_async`` is asyncio-based; the port is synchronous and called from Celery
threads. One event loop runs in a daemon thread for the whole process (ib_async keeps the
first loop it sees, ``util.getLoop`` being cached, so there is one loop per process; a
forked child starts its own and hands it to ib_async). Each (host, port, clientId) has one
``_Session``: one connection on that loop and a lock, so that one call runs at a time on
it. Every call has a timeout. A clientId may be connected once per gateway: give each
process its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any, TypeVar

from ib_async import IB, Contract, ExecutionFilter, Forex, MarketOrder, Stock, util
from ib_async.ib import StartupFetch
from ib_async.wrapper import RequestError

from brokers.errors import (
    BrokerAuthError,
    BrokerBadReply,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    BrokerUnknownSymbol,
)
from brokers.gateway import (
    OPENED_AT_UNKNOWN,
    AccountState,
    Bar,
    BrokerPosition,
    CloseResult,
    Deal,
    DealReason,
    OrderResult,
    Quote,
    Side,
    SymbolSpec,
)

T = TypeVar("T")

UNSET_DOUBLE = 1.7976931348623157e308  # TWS API: Double.MAX_VALUE, "no value"
CURRENCIES = frozenset({"AUD", "CAD", "CHF", "CNH", "EUR", "GBP", "HKD", "JPY", "NOK", "NZD",
                        "SEK", "SGD", "USD"})
ACCOUNT_TAGS = ("NetLiquidation", "TotalCashValue", "SettledCash", "MaintMarginReq",
                "AvailableFunds", "UnrealizedPnL")
PACING_ERRORS = frozenset({100, 162, 420, 322})  # 162: when it says "pacing"
UNAVAILABLE_ERRORS = frozenset({326, 502, 504, 1100, 1300, 2110})
REJECTED_ERRORS = frozenset({201, 203})
NO_SECURITY_DEFINITION = 200
HISTORICAL_DATA_ERROR = 162  # a pacing violation, or "HMDS query returned no data"
RETCODE_DONE = 0  # our own: the order filled (IB reports statuses, not retcodes)
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
WORKING_STATES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted"})
STOP_OUT_LEVEL = Decimal(100)
MAX_ORDER_UNITS = Decimal(1_000_000)


def error_for(code: int, message: str, what: str) -> BrokerError:
    """The gateway error for an IB error code (TWS API: "Message Codes")."""
    detail = {"call": what, "ib_error": code}
    if code == NO_SECURITY_DEFINITION:
        return BrokerUnknownSymbol(f"{what}: {message}", detail=detail)
    if code in PACING_ERRORS and (code != HISTORICAL_DATA_ERROR or "pacing" in message.lower()):
        return BrokerTimeout(f"{what}: pacing ({code}): {message}", detail=detail)
    return BrokerUnavailable(f"{what} failed ({code}): {message}", detail=detail)


# --- field validation -------------------------------------------------------------------
def _bad(name: str, value: Any, why: str) -> BrokerBadReply:
    return BrokerBadReply(f"{name} {why}: {value!r}", detail={"field": name})


def _decimal(value: Any, name: str, *, positive: bool = False,
             minimum: Decimal | None = None) -> Decimal:
    """A finite number (a float from ib_async or a string from the wire) as Decimal."""
    if isinstance(value, bool) or value is None:
        raise _bad(name, value, "is not a number")
    if isinstance(value, float):
        if not math.isfinite(value) or value == UNSET_DOUBLE:
            raise _bad(name, value, "is not finite")
        number = Decimal(repr(value))
    else:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _bad(name, value, "is not a number") from None
        if not number.is_finite():
            raise _bad(name, value, "is not finite")
    if positive and number <= 0:
        raise _bad(name, value, "must be positive")
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"is below {minimum}")
    return number


def _text(value: Any, name: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value):
        raise _bad(name, value, "is not text")
    return value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(name, value, "is not a positive integer")
    return value


def multiplier_of(contract: Any) -> Decimal:
    """A contract's multiplier (TWS API: Contract.multiplier, "" for 1)."""
    raw = getattr(contract, "multiplier", "") or "1"
    return _decimal(raw, "multiplier", positive=True)


def symbol_of(contract: Any) -> str:
    """The gateway's symbol: "EURUSD" for a CASH pair, the ticker for anything else."""
    symbol = _text(getattr(contract, "symbol", None), "symbol")
    if getattr(contract, "secType", "") == "CASH":
        return symbol + _text(getattr(contract, "currency", None), "currency")
    return symbol


def contract_for(symbol: str) -> Any:
    """An unqualified contract for a gateway symbol: a pair of currencies (EURUSD) is
    ``CASH`` on ``IDEALPRO``, anything else a ``STK`` on ``SMART`` in USD."""
    if len(symbol) == 6 and symbol[:3] in CURRENCIES and symbol[3:] in CURRENCIES:
        return Forex(symbol, exchange="IDEALPRO")
    return Stock(symbol, "SMART", "USD")


def _digits(tick: Decimal) -> int:
    """Decimal places of a tick size (0.00005 → 5)."""
    exponent = tick.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def exec_ticket(exec_id: str) -> int:
    """A stable positive 63-bit deal ticket for an IB ``execId`` (a text id)."""
    return int.from_bytes(hashlib.sha256(exec_id.encode()).digest()[:8], "big") >> 1


def _is_unset(raw: str) -> bool:
    if raw == "":
        return True
    try:
        return float(raw) >= UNSET_DOUBLE
    except ValueError:
        raise _bad("realizedPNL", raw, "is not a number") from None


# --- pure mappings (no network; tested with hand-made ib_async objects) ----------------
def position_from(item: Any, *, rate: Decimal, opened_at: datetime,
                  comment: str = "") -> BrokerPosition:
    """A BrokerPosition from a ``PortfolioItem`` (TWS API: EWrapper.updatePortfolio).

    ``rate`` converts the contract's currency into the account's (``ExchangeRate``);
    ``price_open`` = ``averageCost`` ÷ multiplier, in the contract's currency.
    """
    contract = item.contract
    quantity = _decimal(item.position, "position")
    if quantity == 0:
        raise _bad("position", item.position, "is zero")
    return BrokerPosition(
        ticket=_positive_int(contract.conId, "conId"),
        symbol=symbol_of(contract),
        side=Side.BUY if quantity > 0 else Side.SELL,
        volume=abs(quantity),
        price_open=_decimal(item.averageCost, "averageCost", positive=True)
        / multiplier_of(contract),
        price_current=_decimal(item.marketPrice, "marketPrice", positive=True),
        sl=None,
        tp=None,
        swap=Decimal(0),
        profit=(_decimal(item.unrealizedPNL, "unrealizedPNL") * rate).quantize(
            Decimal("0.01")),
        magic=0,
        comment=comment,
        opened_at=opened_at,
        identifier=contract.conId,
    )


@dataclass(frozen=True, slots=True)
class RawReport:
    """A commission report as the wire carried it (TWS API: CommissionReport), before
    ib_async turns an UNSET realizedPNL into 0.0."""

    exec_id: str
    commission: str
    currency: str
    realized_pnl: str


def deal_from(fill: Any, report: RawReport, *, rate: Decimal) -> Deal:
    """A Deal from one execution and its commission report (TWS API: EWrapper.execDetails,
    EWrapper.commissionReport). ``rate`` converts the report's currency into the account's.

    ``profit`` + ``commission`` = ``realizedPNL`` (IB's realized P&L is net of the
    commissions); an opening execution (realizedPNL UNSET) has entry "in" and nets to 0:
    its commission is carried in avgCost, so the closing executions' realizedPNL already
    counts it, and ``positions.pnl.position_closing`` (which sums the net of every deal
    of a position, as MetaTrader 5's "in" deals need) must not count it twice. Its
    ``commission`` is still reported; ``profit`` offsets it.
    """
    execution, contract = fill.execution, fill.contract
    side = {"BOT": Side.BUY, "SLD": Side.SELL}.get(execution.side)
    if side is None:
        raise _bad("side", execution.side, "is neither BOT nor SLD")
    commission = _decimal(report.commission, "commission", minimum=Decimal(0)) * rate
    opening = _is_unset(report.realized_pnl)
    realized = Decimal(0) if opening else _decimal(report.realized_pnl, "realizedPNL") * rate
    time = execution.time
    if not isinstance(time, datetime) or time.tzinfo is None:
        raise _bad("time", time, "is not an aware time")
    reason = DealReason.CLIENT if execution.clientId == 0 else DealReason.EXPERT
    if execution.liquidation:
        reason = DealReason.SO
    return Deal(
        ticket=exec_ticket(_text(execution.execId, "execId")),
        order=execution.permId,
        position_id=_positive_int(contract.conId, "conId"),
        symbol=symbol_of(contract),
        side=side,
        entry="in" if opening else "out",
        reason=reason,
        volume=_decimal(execution.shares, "shares", positive=True),
        price=_decimal(execution.price, "price", positive=True),
        profit=commission if opening else realized + commission,
        swap=Decimal(0),
        commission=-commission,
        fee=Decimal(0),
        magic=0,
        comment=execution.orderRef or "",
        time=time.astimezone(UTC),
    )


def latest_corrections(fills: list[Any]) -> list[Any]:
    """One fill per execution: a correction (same execId up to the last dot, a higher
    suffix) replaces the execution it corrects (TWS API: "Execution corrections")."""
    chosen: dict[str, Any] = {}
    for fill in fills:
        exec_id = fill.execution.execId
        base, _, suffix = exec_id.rpartition(".")
        key = base or exec_id
        held = chosen.get(key)
        if held is None or held.execution.execId.rpartition(".")[2] < suffix:
            chosen[key] = fill
    return list(chosen.values())


def opening_executions(fills: list[Any], quantities: dict[int, Decimal]) -> dict[int, Any]:
    """Per conId, the execution that opened the position now held (the last one that took
    the running quantity from flat or across zero), when the history explains it."""
    opened: dict[int, Any] = {}
    running: dict[int, Decimal] = {}
    for fill in sorted(fills, key=lambda f: f.execution.time):
        con_id = fill.contract.conId
        before = running.get(con_id, Decimal(0))
        shares = Decimal(repr(fill.execution.shares))
        after = before + (shares if fill.execution.side == "BOT" else -shares)
        if before == 0 or (before > 0) != (after > 0):
            opened[con_id] = fill
        running[con_id] = after
    return {c: f for c, f in opened.items() if running.get(c) == quantities.get(c)}


# --- the connection -----------------------------------------------------------------------
@dataclass(slots=True)
class _Session:
    """One API connection to one gateway as one clientId, with its own event loop thread."""

    host: str
    port: int
    client_id: int
    loop: asyncio.AbstractEventLoop
    lock: threading.Lock = field(default_factory=threading.Lock)
    ib: Any = None
    errors: deque = field(default_factory=lambda: deque(maxlen=200))  # (seq, reqId, code, text)
    error_seq: int = 0
    reports: dict[str, RawReport] = field(default_factory=dict)
    contracts: dict[str, Any] = field(default_factory=dict)

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
        """Run ``factory()`` on the session's loop, one call at a time, within ``timeout``
        seconds. Raises BrokerTimeout when it takes longer."""
        with self.lock:
            future = asyncio.run_coroutine_threadsafe(_bounded(factory, timeout), self.loop)
            try:
                return future.result(timeout + 2)
            except TimeoutError:
                future.cancel()
                raise BrokerTimeout(f"{what} timed out after {timeout} s",
                                    detail={"call": what}) from None

    def record_error(self, req_id: int, code: int, message: str, *_: Any) -> None:
        self.error_seq += 1
        self.errors.append((self.error_seq, req_id, code, message))

    def errors_since(self, mark: int) -> list[tuple[int, str]]:
        """(code, message) of the IB errors recorded after ``mark`` (an ``error_seq``)."""
        return [(code, text) for seq, _, code, text in self.errors if seq > mark]

    def install(self) -> None:
        """Create the IB object on the loop's thread and tap its raw commission reports."""
        self.ib = IB()
        self.ib.RaiseRequestErrors = True
        self.ib.errorEvent += self.record_error
        decoder = self.ib.client.decoder
        original = decoder.handlers[59]

        def commission_report(fields: list[str]) -> None:
            # fields: 59, version, execId, commission, currency, realizedPNL, yield, date
            if len(fields) >= 6:
                self.reports[fields[2]] = RawReport(fields[2], fields[3], fields[4], fields[5])
            original(fields)

        decoder.handlers[59] = commission_report


async def _bounded(factory: Callable[[], Awaitable[T]], timeout: float) -> T:
    if util.getLoop() is not asyncio.get_running_loop():
        # ib_async keeps the first loop it saw (util.getLoop is functools.cache'd): after
        # a fork it is the parent's. Let it take this one.
        util.getLoop.cache_clear()
        util.getLoop()
    return await asyncio.wait_for(factory(), timeout)


_SESSIONS: dict[tuple[str, int, int], _Session] = {}
_SESSIONS_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_PID = 0


def _loop() -> asyncio.AbstractEventLoop:
    """The process's ibkr event loop, started on first use in a daemon thread (again in a
    forked child, such as a prefork Celery worker: threads do not survive a fork)."""
    global _LOOP, _LOOP_PID
    with _SESSIONS_LOCK:
        if _LOOP is None or _LOOP_PID != os.getpid():
            _SESSIONS.clear()  # a parent's connections are not this process's
            _LOOP, _LOOP_PID = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_LOOP.run_forever, daemon=True, name="ibkr-loop").start()
        return _LOOP


def _session(host: str, port: int, client_id: int) -> _Session:
    loop = _loop()  # first: after a fork it forgets the parent's sessions
    key = (host, int(port), int(client_id))
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None or session.loop is not loop:
            session = _SESSIONS[key] = _Session(host, int(port), int(client_id), loop)
        return session


def close_sessions() -> None:
    """Disconnect every session of this process (tests, shutdown); the loop stays."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()

    async def disconnect(ib: Any) -> None:
        ib.disconnect()

    for session in sessions:
        if session.ib is not None and session.loop is _LOOP:
            with session.lock:
                asyncio.run_coroutine_threadsafe(disconnect(session.ib), session.loop).result(5)


class IbkrGateway:
    """``BrokerGateway`` for one IB account (``account_id``) behind an IB Gateway.

    Construction never touches the network; the connection is made on first use (and
    again after it broke). ``timeout_seconds`` bounds every call. Raises ``BrokerError``
    subclasses only (see the module docstring).
    """

    def __init__(self, *, host: str, port: int, client_id: int, account_id: str,
                 timeout_seconds: float = 10.0) -> None:
        if not account_id:
            raise ValueError("an IB account id is required")
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.account_id = account_id
        self.timeout = float(timeout_seconds)

    @property
    def _session(self) -> _Session:
        """This process's session for the gateway and clientId (looked up on each call, so
        that a gateway object inherited through a fork uses the child's own)."""
        return _session(self.host, self.port, self.client_id)

    def __repr__(self) -> str:
        return (f"IbkrGateway(account_id={self.account_id!r}, "
                f"gateway={self.host}:{self.port}, client_id={self.client_id})")

    # --- plumbing ---
    def _call(self, what: str, body: Callable[[Any], Awaitable[T]]) -> T:
        async def run() -> T:
            ib = await self._connected()
            mark = self._session.error_seq
            try:
                # within the call's timeout, so that what IB said meanwhile names the cause
                return await asyncio.wait_for(body(ib), self.timeout * 0.9)
            except TimeoutError:
                raise self._timeout(what, mark) from None
            except ConnectionError as exc:
                raise BrokerUnavailable(f"{what}: the connection to IB Gateway broke: {exc}",
                                        detail={"call": what}) from None
            except RequestError as exc:
                raise error_for(exc.code, exc.message, what) from None

        return self._session.call(run, self.timeout, what)

    def _timeout(self, what: str, mark: int) -> BrokerError:
        """A request that got no answer: an unsolicited IB error since it was sent (reqId
        -1: pacing, lost connectivity) names the cause; else it is a timeout."""
        for code, message in reversed(self._session.errors_since(mark)):
            if code in PACING_ERRORS or code in UNAVAILABLE_ERRORS:
                return error_for(code, message, what)
        return BrokerTimeout(f"{what}: no answer from IB Gateway", detail={"call": what})

    async def _connected(self) -> Any:
        session = self._session
        if session.ib is None:
            session.install()
        ib = session.ib
        if not ib.isConnected():
            await self._connect(ib)
        if self.account_id not in ib.managedAccounts():
            raise BrokerAuthError(
                f"account {self.account_id} is not managed by IB Gateway "
                f"{self.host}:{self.port}", detail={"managed": list(ib.managedAccounts())})
        return ib

    async def _connect(self, ib: Any) -> None:
        mark = self._session.error_seq
        try:
            # within the call's own timeout, so that a refusal (326) is told as such
            await ib.connectAsync(self.host, self.port, clientId=self.client_id,
                                  timeout=self.timeout * 0.8, readonly=False,
                                  fetchFields=StartupFetch.POSITIONS)
        except (OSError, ConnectionError, TimeoutError) as exc:
            codes = [code for code, _ in self._session.errors_since(mark)]
            raise BrokerUnavailable(
                f"cannot connect to IB Gateway {self.host}:{self.port} as clientId "
                f"{self.client_id}: {exc!r}", detail={"ib_errors": codes}) from None

    # --- reads ---
    async def _summary(self, ib: Any) -> dict[str, tuple[str, str]]:
        """reqAccountSummary for our tags, cancelled after its end (TWS allows two at once):
        {tag: (value, currency)} for this account."""
        wrapper, client = ib.wrapper, ib.client
        for key in [k for k in wrapper.acctSummary if k[0] == self.account_id]:
            del wrapper.acctSummary[key]
        req_id = client.getReqId()
        future = wrapper.startReq(req_id)
        client.reqAccountSummary(req_id, "All", ",".join(ACCOUNT_TAGS))
        try:
            await future
        finally:
            if ib.isConnected():
                client.cancelAccountSummary(req_id)
        return {tag: (v.value, v.currency) for (acct, tag, _), v in wrapper.acctSummary.items()
                if acct == self.account_id}

    def account_state(self) -> AccountState:
        """The account's figures in its base currency (TWS API: reqAccountSummary /
        EWrapper.accountSummary; reqCurrentTime for the server time). Raises BrokerBadReply
        naming a missing or bad tag."""
        async def read(ib: Any) -> tuple[dict[str, tuple[str, str]], datetime]:
            summary = await self._summary(ib)
            return summary, await ib.reqCurrentTimeAsync()

        summary, now = self._call("reqAccountSummary", read)
        values = {}
        for tag in ACCOUNT_TAGS:
            if tag not in summary:
                raise BrokerBadReply(f"account summary has no {tag}", detail={"field": tag})
            values[tag] = _decimal(summary[tag][0], tag).quantize(Decimal("0.01"))
        currency = _text(summary["NetLiquidation"][1], "currency")
        margin = values["MaintMarginReq"]
        if margin < 0:
            raise _bad("MaintMarginReq", margin, "is negative")
        equity = values["NetLiquidation"]
        return AccountState(
            login=int("".join(ch for ch in self.account_id if ch.isdigit()) or 0),
            server=self.account_id,
            currency=currency,
            leverage=1,
            balance=values["TotalCashValue"],
            credit=Decimal(0),
            profit=values["UnrealizedPnL"],
            equity=equity,
            margin=margin,
            free_margin=values["AvailableFunds"],
            margin_level=(equity / margin * 100).quantize(Decimal("0.01")) if margin > 0
            else None,
            margin_so_call=STOP_OUT_LEVEL,
            margin_so_so=STOP_OUT_LEVEL,
            trade_allowed=True,
            server_time=now.astimezone(UTC) if isinstance(now, datetime) else None,
        )

    async def _download(self, ib: Any) -> tuple[dict[int, Any], dict[str, Decimal], str]:
        """reqAccountUpdates for this account until accountDownloadEnd, then unsubscribed:
        (portfolio items by conId, ExchangeRate by currency, base currency)."""
        wrapper = ib.wrapper
        wrapper.portfolio[self.account_id].clear()
        for key in [k for k in wrapper.accountValues if k[0] == self.account_id]:
            del wrapper.accountValues[key]
        try:
            await ib.reqAccountUpdatesAsync(self.account_id)
        finally:
            if ib.isConnected():
                ib.client.reqAccountUpdates(False, self.account_id)
        rates, base = {}, ""
        for (acct, tag, currency, _), value in list(wrapper.accountValues.items()):
            if acct != self.account_id:
                continue
            if tag == "ExchangeRate":
                rates[currency] = _decimal(value.value, "ExchangeRate", positive=True)
            elif tag == "NetLiquidation":
                base = currency
        if not base:
            raise BrokerBadReply("account updates carried no NetLiquidation",
                                 detail={"field": "NetLiquidation"})
        rates.setdefault(base, Decimal(1))
        return dict(wrapper.portfolio[self.account_id]), rates, base

    async def _executions(self, ib: Any, since: datetime | None) -> list[Any]:
        """reqExecutions for this account (from ``since``, UTC), one fill per execution,
        each with its raw commission report waited for (partial → BrokerBadReply)."""
        stamp = since.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S") if since else ""
        fills = await ib.reqExecutionsAsync(ExecutionFilter(acctCode=self.account_id,
                                                            time=stamp))
        fills = latest_corrections([f for f in fills
                                    if f.execution.acctNumber == self.account_id])
        for _ in range(50):  # commission reports may follow execDetailsEnd
            missing = [f.execution.execId for f in fills
                       if f.execution.execId not in self._session.reports]
            if not missing:
                return fills
            await asyncio.sleep(0.02)
        raise BrokerBadReply(f"no commission report for executions {missing}",
                             detail={"field": "commissionReport", "execIds": missing})

    def positions(self) -> list[BrokerPosition]:
        """Open positions of the account (TWS API: reqPositions / EWrapper.position, checked
        against reqAccountUpdates / EWrapper.updatePortfolio for market price and P&L, and
        reqExecutions for when each opened). A position without its portfolio item, or
        with another quantity, is a partial read: BrokerBadReply. ``opened_at`` is the
        opening execution's time, 1970-01-01 UTC when IB's execution history (the last
        days) no longer holds it; ``comment`` that execution's ``orderRef``."""
        async def read(ib: Any) -> tuple[list[Any], dict[int, Any], dict[str, Decimal],
                                         list[Any]]:
            listed = await ib.reqPositionsAsync()
            ib.client.cancelPositions()
            portfolio, rates, _ = await self._download(ib)
            return listed, portfolio, rates, await self._executions(ib, None)

        listed, portfolio, rates, fills = self._call("reqPositions", read)
        held = {p.contract.conId: _decimal(p.position, "position")
                for p in listed if p.account == self.account_id and p.position != 0}
        opened = opening_executions(fills, held)
        positions = []
        for con_id, quantity in sorted(held.items()):
            item = portfolio.get(con_id)
            if item is None or _decimal(item.position, "position") != quantity:
                raise BrokerBadReply(
                    f"position {con_id} ({quantity}) does not match the portfolio",
                    detail={"field": "updatePortfolio", "conId": con_id})
            rate = self._rate(rates, item.contract.currency)
            fill = opened.get(con_id)
            positions.append(position_from(
                item, rate=rate,
                opened_at=fill.execution.time.astimezone(UTC) if fill else _EPOCH,
                comment=fill.execution.orderRef if fill else ""))
        extra = set(portfolio) - set(held)
        if any(portfolio[c].position != 0 for c in extra):
            raise BrokerBadReply("the portfolio lists a position reqPositions did not",
                                 detail={"field": "position", "conIds": sorted(extra)})
        return positions

    @staticmethod
    def _rate(rates: dict[str, Decimal], currency: str) -> Decimal:
        if currency not in rates:
            raise BrokerBadReply(f"no ExchangeRate for {currency}",
                                 detail={"field": "ExchangeRate", "currency": currency})
        return rates[currency]

    def deals(self, since: datetime, until: datetime | None = None) -> list[Deal]:
        """Executions of the account from ``since`` to ``until`` (default now) with their
        commission reports (TWS API: reqExecutions, EWrapper.execDetails,
        EWrapper.commissionReport), times aware UTC, money in the account currency at the
        current ``ExchangeRate``. IB keeps executions of the last days only."""
        async def read(ib: Any) -> tuple[list[Any], dict[str, Decimal]]:
            fills = await self._executions(ib, since)
            rates: dict[str, Decimal] = {}
            if fills:  # the report's currency may not be the account's
                _, rates, _ = await self._download(ib)
            return fills, rates

        fills, rates = self._call("reqExecutions", read)
        deals = []
        for fill in fills:
            report = self._session.reports[fill.execution.execId]
            rate = self._rate(rates, report.currency) if report.currency else Decimal(1)
            deal = deal_from(fill, report, rate=rate)
            if until is None or deal.time <= until:
                deals.append(deal)
        return sorted(deals, key=lambda d: (d.time, d.ticket))

    async def _qualified(self, ib: Any, symbol: str) -> Any:
        """The contract for a gateway symbol (TWS API: reqContractDetails); error 200 →
        BrokerUnknownSymbol. Cached per session."""
        cached = self._session.contracts.get(symbol)
        if cached is not None:
            return cached
        details = await ib.reqContractDetailsAsync(contract_for(symbol))
        if len(details) != 1:
            raise BrokerUnknownSymbol(f"{symbol}: {len(details)} contracts match",
                                      detail={"symbol": symbol})
        self._session.contracts[symbol] = details[0]
        return details[0]

    def quote(self, symbol: str) -> Quote:
        """Best bid and ask now (TWS API: reqMktData snapshot, EWrapper.tickPrice), in the
        contract's currency."""
        async def read(ib: Any) -> Any:
            details = await self._qualified(ib, symbol)
            (ticker,) = await ib.reqTickersAsync(details.contract)
            return ticker

        ticker = self._call("reqMktData", read)
        bid = _decimal(ticker.bid, "bid", positive=True)
        ask = _decimal(ticker.ask, "ask", positive=True)
        if ask < bid:
            raise _bad("ask", ask, f"is below the bid {bid}")
        when = ticker.time if isinstance(ticker.time, datetime) else datetime.now(tz=UTC)
        return Quote(symbol=symbol, bid=bid, ask=ask, time=when.astimezone(UTC))

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        """Contract rules (TWS API: reqContractDetails / ContractDetails): ``tick_size`` =
        minTick, ``contract_size`` = multiplier, ``tick_value`` = minTick × multiplier in
        the account currency (at the current ``ExchangeRate``), volumes in shares or units
        from minSize and sizeIncrement."""
        async def read(ib: Any) -> tuple[Any, dict[str, Decimal], str]:
            details = await self._qualified(ib, symbol)
            _, rates, base = await self._download(ib)
            return details, rates, base

        details, rates, _base = self._call("reqContractDetails", read)
        contract = details.contract
        tick = _decimal(details.minTick, "minTick", positive=True)
        size = multiplier_of(contract)
        rate = self._rate(rates, contract.currency)
        step = _decimal(details.sizeIncrement or 1, "sizeIncrement", positive=True)
        cash = contract.secType == "CASH"
        return SymbolSpec(
            symbol=symbol, digits=_digits(tick),
            point=tick, contract_size=size, tick_size=tick, tick_value=tick * size * rate,
            volume_min=_decimal(details.minSize or step, "minSize", positive=True),
            volume_step=step, volume_max=MAX_ORDER_UNITS,
            currency_base=contract.symbol if cash else contract.currency,
            currency_profit=contract.currency, currency_margin=contract.currency,
            filling_modes=frozenset({"ioc"}), calc_mode="forex" if cash else "cfd",
            tick_value_loss=None)

    # --- orders ---
    async def _working_order(self, ib: Any, tag: str) -> Any:
        """An order of this account with ``orderRef`` = ``tag`` still working, or None
        (TWS API: reqAllOpenOrders / EWrapper.openOrder)."""
        trades = await ib.reqAllOpenOrdersAsync()
        for trade in trades:
            order = trade.order
            if order.orderRef == tag and order.account == self.account_id and \
                    trade.orderStatus.status in WORKING_STATES:
                return trade
        return None

    async def _send_market(self, ib: Any, contract: Any, action: str, quantity: Decimal,
                           tag: str) -> Any:
        """Place a market order and wait until it is done or the call's time runs out."""
        order = MarketOrder(action, float(quantity), account=self.account_id, orderRef=tag,
                            tif="DAY")
        trade = ib.placeOrder(contract, order)
        while not trade.isDone():
            await trade.statusEvent
        return trade

    def close_position(self, ticket: int, volume: Decimal | None, tag: str) -> CloseResult:
        """Close ``volume`` (all if None) of the position in contract ``ticket`` (its conId):
        a market order of the opposite side with ``orderRef`` = ``tag`` (TWS API:
        placeOrder; EWrapper.orderStatus / execDetails). Idempotent: while an order with
        this tag is working, nothing is sent (ambiguous); a position that is already flat
        is done. No answer in time is ambiguous; a rejection (201) is neither done nor
        retryable; pacing is retryable."""
        async def run(ib: Any) -> CloseResult:
            working = await self._working_order(ib, tag)
            if working is not None:
                return _close_result(ticket, working, ambiguous=True,
                                     comment=f"order {working.order.orderId} with orderRef "
                                             f"{tag} is still working")
            listed = await ib.reqPositionsAsync()
            ib.client.cancelPositions()
            held = next((p for p in listed if p.account == self.account_id
                         and p.contract.conId == ticket and p.position != 0), None)
            if held is None:
                return CloseResult(ticket=ticket, retcode=RETCODE_DONE,
                                   comment="position already closed", price=None,
                                   volume=None, deal=None, done=True, retryable=False,
                                   ambiguous=False)
            quantity = abs(_decimal(held.position, "position"))
            wanted = min(volume, quantity) if volume is not None else quantity
            (details,) = await ib.reqContractDetailsAsync(Contract(conId=ticket))
            action = "SELL" if held.position > 0 else "BUY"
            try:
                trade = await asyncio.wait_for(
                    self._send_market(ib, details.contract, action, wanted, tag),
                    self.timeout * 0.8)
            except TimeoutError:
                return CloseResult(ticket=ticket, retcode=-1, comment="no final order "
                                   "status in time: look the position up before sending",
                                   price=None, volume=None, deal=None, done=False,
                                   retryable=False, ambiguous=True)
            return _close_result(ticket, trade, requested=wanted)

        return self._call("placeOrder", run)

    def open_position(self, symbol: str, side: Side, volume: Decimal, *, sl: Decimal | None,
                      tp: Decimal | None, tag: str) -> OrderResult:
        """Open a market position of ``volume`` shares/units with ``orderRef`` = ``tag``
        (TWS API: placeOrder). Stops are not sent yet: with ``sl`` or ``tp`` nothing is
        sent and the result says so."""
        if sl is not None or tp is not None:
            return OrderResult(retcode=-1, comment="the ibkr adapter does not send stops yet",
                               ticket=None, price=None, volume=None, done=False,
                               retryable=False, ambiguous=False)

        async def run(ib: Any) -> Any:
            details = await self._qualified(ib, symbol)
            action = "BUY" if side is Side.BUY else "SELL"
            return await asyncio.wait_for(
                self._send_market(ib, details.contract, action, volume, tag),
                self.timeout * 0.8)

        try:
            trade = self._call("placeOrder", run)
        except BrokerTimeout:
            return OrderResult(retcode=-1, comment="no final order status in time",
                               ticket=None, price=None, volume=None, done=False,
                               retryable=False, ambiguous=True)
        result = _close_result(0, trade, requested=volume)
        return OrderResult(retcode=result.retcode, comment=result.comment,
                           ticket=trade.contract.conId if result.volume else None,
                           price=result.price, volume=result.volume,
                           done=result.done or result.partial, retryable=result.retryable,
                           ambiguous=result.ambiguous)

    def margin_required(self, symbol: str, side: Side, volume: Decimal,
                        price: Decimal) -> Decimal:
        """The initial margin a market order of ``volume`` would add, in the account
        currency (TWS API: placeOrder with whatIf, OrderState.initMarginChange); 0 when
        it would reduce the margin (it closes part of a position). IB prices the preview
        at the market: ``price`` is not used."""
        async def read(ib: Any) -> Any:
            details = await self._qualified(ib, symbol)
            order = MarketOrder("BUY" if side is Side.BUY else "SELL", float(volume),
                                account=self.account_id)
            return await ib.whatIfOrderAsync(details.contract, order)

        state = self._call("whatIfOrder", read)
        change = _decimal(state.initMarginChange, "initMarginChange")
        return max(change, Decimal(0)).quantize(Decimal("0.01"))

    def recent_bars(self, symbol: str, count: int = 2) -> list[Bar]:
        """The last ``count`` one-hour bars, oldest first, the last one in progress (TWS
        API: reqHistoricalData, "1 hour", MIDPOINT for a pair and TRADES for a stock,
        epoch dates). No data (error 162) is BrokerUnavailable, pacing BrokerTimeout."""
        async def read(ib: Any) -> list[Any]:
            details = await self._qualified(ib, symbol)
            show = "MIDPOINT" if details.contract.secType == "CASH" else "TRADES"
            return await ib.reqHistoricalDataAsync(
                details.contract, "", f"{max(count, 1) * 3600} S", "1 hour", show, False,
                formatDate=2, timeout=0)

        rows = self._call("reqHistoricalData", read)
        bars = []
        for row in list(rows)[-count:]:
            if not isinstance(row.date, datetime) or row.date.tzinfo is None:
                raise _bad("date", row.date, "is not an aware time")
            bars.append(Bar(time=row.date.astimezone(UTC),
                            open=_decimal(row.open, "open", positive=True),
                            close=_decimal(row.close, "close", positive=True)))
        if any(b.time >= c.time for b, c in pairwise(bars)):
            raise BrokerBadReply("reqHistoricalData answered bars out of order",
                                 detail={"field": "date"})
        return bars


_EPOCH = OPENED_AT_UNKNOWN


def _close_result(ticket: int, trade: Any, *, requested: Decimal | None = None,
                  ambiguous: bool = False, comment: str = "") -> CloseResult:
    """A CloseResult from an ib_async Trade: filled in full → done; filled in part →
    partial; cancelled with an IB error → that code (201 rejected, pacing retryable)."""
    status = trade.orderStatus
    filled = Decimal(repr(status.filled)) if status.filled else Decimal(0)
    errors = [e.errorCode for e in trade.log if getattr(e, "errorCode", 0)]
    code = errors[-1] if errors else RETCODE_DONE
    price = Decimal(repr(status.avgFillPrice)) if filled else None
    deal = exec_ticket(trade.fills[-1].execution.execId) if trade.fills else None
    partial = bool(filled) and requested is not None and filled < requested
    done = status.status == "Filled" and not partial and not ambiguous
    return CloseResult(
        ticket=ticket, retcode=code,
        comment=comment or (trade.log[-1].message if trade.log else status.status),
        price=price, volume=filled or None, deal=deal, done=done,
        retryable=code in PACING_ERRORS, ambiguous=ambiguous, partial=partial)
