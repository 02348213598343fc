"""A local IB Gateway stand-in: a socket server speaking the TWS API wire protocol.

It answers what ``brokers.ibkr`` (through ``ib_async``) and the official ``ibapi`` client
send, with the message ids and field orders of the real protocol at server version
``SERVER_VERSION`` (178, ``MIN_SERVER_VER_PENDING_PRICE_REVISION``: the highest version
ib_async 2.0.1 asks for, below the protobuf messages of 201+). Framing (TWS API: comm.py):

- the client opens with ``API\\0`` and a length-prefixed ``v<min>..<max>[ options]``; the
  stand-in answers ``<version>\\0<connection time>\\0`` when 178 lies in the range, and
  closes the socket otherwise;
- every later message is a 4-byte big-endian length and null-terminated text fields, the
  first being the message id (``ibapi.message.IN`` / ``OUT``);
- ``startApi`` (71) must come first: then ``managedAccounts`` (15) and ``nextValidId`` (9).
  A clientId already connected gets error 326 and the socket is closed.

Prices come from the project's real data: ``EURUSD_H1.csv`` (EUR.USD, ``CASH`` on
``IDEALPRO``) and ``GOOG_D1.csv`` (GOOG, ``STK`` on ``SMART``/``NASDAQ``), one row per
"bar"; ``advance`` moves both forward. Accounts hold cash per currency and positions with
IB's ``avgCost`` (price × multiplier plus commission per unit); a closing execution's
``CommissionReport.realizedPNL`` is net of both legs' commissions, as IB reports it.

Strict where the real gateway is: an unknown contract is error 200, an order for an account
it does not manage or beyond the margin is 201, a reused order id 103, a third account
summary subscription 322, an unknown message id 505. The admin port (JSON lines) drives the
simulation and injects faults; it is not part of the TWS API. Run it as a process:
``python -m brokers.sim.ibgateway --port 0 --admin-port 0`` (see ``brokers/sim/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

SERVER_VERSION = 178
HERE = Path(__file__).resolve().parent
EURUSD_CSV = HERE / "EURUSD_H1.csv"
GOOG_CSV = HERE / "GOOG_D1.csv"
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"  # TWS API: Double.MAX_VALUE, "no value"
UNSET_INTEGER_TEXT = "2147483647"  # TWS API: Integer.MAX_VALUE, "no value"
CENT = Decimal("0.01")


class In:
    """Message ids the stand-in sends (TWS API: ibapi.message.IN)."""

    TICK_PRICE = 1
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    COMPLETED_ORDERS_END = 102


class Out:
    """Message ids the stand-in reads (TWS API: ibapi.message.OUT)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    REQ_CURRENT_TIME = 49
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_COMPLETED_ORDERS = 99


# TWS API error codes the stand-in answers (TWS API: "Error Codes" in the reference)
ERR_DUPLICATE_ORDER_ID = 103
ERR_NO_SECURITY_DEFINITION = 200
ERR_ORDER_REJECTED = 201
ERR_ORDER_CANCELLED = 202
ERR_MAX_RATE = 100
ERR_HISTORICAL_DATA = 162
ERR_READING_REQUEST = 320
ERR_VALIDATION = 321
ERR_MAX_ACCOUNT_SUMMARY = 322
ERR_CLIENT_ID_IN_USE = 326
ERR_UNKNOWN_MESSAGE = 505
ERR_CONNECTIVITY_LOST = 1100
MAX_ACCOUNT_SUMMARIES = 2
MAX_MESSAGE_BYTES = 0xFFFFFF  # TWS API: comm.py, the largest message it frames
# placeOrder of a plain order (no combo legs, algo, conditions…) at server version 178, as
# ibapi 10.50 and ib_async 2.0.1 both encode it: 114 fields, whatIf at index 84
PLAIN_ORDER_FIELDS = 114
WHAT_IF_INDEX = 84

# the request whose answer a fault replaces, by message id; reqId's field index or None
REQUESTS: dict[int, tuple[str, int | None]] = {
    Out.REQ_MKT_DATA: ("reqMktData", 2),
    Out.PLACE_ORDER: ("placeOrder", 1),
    Out.REQ_OPEN_ORDERS: ("reqOpenOrders", None),
    Out.REQ_ALL_OPEN_ORDERS: ("reqAllOpenOrders", None),
    Out.REQ_ACCT_DATA: ("reqAccountUpdates", None),
    Out.REQ_EXECUTIONS: ("reqExecutions", 2),
    Out.REQ_CONTRACT_DATA: ("reqContractDetails", 2),
    Out.REQ_CURRENT_TIME: ("reqCurrentTime", None),
    Out.REQ_HISTORICAL_DATA: ("reqHistoricalData", 1),
    Out.REQ_POSITIONS: ("reqPositions", None),
    Out.REQ_ACCOUNT_SUMMARY: ("reqAccountSummary", 2),
    Out.REQ_COMPLETED_ORDERS: ("reqCompletedOrders", None),
}
FAULT_KINDS = {"disconnect", "silence", "pacing", "not_connected", "error", "reject", "hold",
               "corrupt"}


@dataclass(frozen=True, slots=True)
class Instrument:
    """One contract the stand-in offers (TWS API: Contract, ContractDetails)."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    min_tick: Decimal
    long_name: str
    margin_rate: Decimal  # maintenance (= initial) margin per unit of market value
    multiplier: str = ""

    @property
    def factor(self) -> Decimal:
        return Decimal(self.multiplier or 1)


INSTRUMENTS = (
    # the real conIds of EUR.USD on IDEALPRO and GOOG on NASDAQ
    Instrument(12087792, "EUR", "CASH", "IDEALPRO", "", "USD", "EUR.USD", "EUR.USD",
               Decimal("0.00005"), "European Monetary Union Euro", Decimal("0.03")),
    Instrument(208813720, "GOOG", "STK", "SMART", "NASDAQ", "USD", "GOOG", "NMS",
               Decimal("0.01"), "ALPHABET INC-CL C", Decimal("0.25")),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One bar of a price file: its opening time (aware UTC) and prices."""

    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


def _load_rows(path: Path, time_column: str) -> list[Row]:
    with open(path, newline="") as handle:
        return [Row(datetime.fromisoformat(row[time_column]).replace(tzinfo=UTC),
                    Decimal(row["open"]), Decimal(row["high"]), Decimal(row["low"]),
                    Decimal(row["close"])) for row in csv.DictReader(handle)]


class PriceBook:
    """Bid/ask per contract from the replayed closes: row ``step`` of each file (wrapping).

    EUR.USD: the H1 close is the bid, the ask 0.00005 above (one IDEALPRO tick); GOOG: the
    daily close is the last price, bid and ask a cent either side. Prices in USD.
    """

    def __init__(self, eurusd: Path = EURUSD_CSV, goog: Path = GOOG_CSV, start: int = 0):
        self.rows = {12087792: _load_rows(eurusd, "time"),
                     208813720: _load_rows(goog, "date")}
        # the bar size of each file, as reqHistoricalData names it
        self.bar_sizes = {12087792: "1 hour", 208813720: "1 day"}
        self.step = start

    def last(self, instrument: Instrument) -> Decimal:
        rows = self.rows[instrument.con_id]
        return rows[self.step % len(rows)].close

    def history(self, instrument: Instrument, count: int) -> list[Row]:
        """The last ``count`` rows up to the current one (in progress), oldest first;
        the replay does not wrap here: never more rows than have been replayed."""
        rows = self.rows[instrument.con_id]
        end = self.step % len(rows) + 1
        return rows[max(0, end - count):end]

    def bid_ask(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        last = self.last(instrument)
        if instrument.sec_type == "CASH":
            return last, last + instrument.min_tick
        return last - instrument.min_tick, last + instrument.min_tick

    def mark(self, instrument: Instrument) -> Decimal:
        bid, ask = self.bid_ask(instrument)
        return (bid + ask) / 2


@dataclass(slots=True)
class Holding:
    """A position: signed quantity and IB's avgCost (per unit, commission included)."""

    instrument: Instrument
    quantity: Decimal = Decimal(0)
    avg_cost: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)


@dataclass(slots=True)
class ExecRecord:
    """One execution and its commission report (TWS API: Execution, CommissionReport)."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    account: str
    instrument: Instrument
    side: str  # "BOT" / "SLD"
    shares: Decimal
    price: Decimal
    time: datetime
    order_ref: str
    commission: Decimal
    realized: Decimal | None  # None: an opening execution (UNSET in the report)


@dataclass(slots=True)
class Account:
    code: str
    currency: str
    cash: dict[str, Decimal]
    holdings: dict[int, Holding] = field(default_factory=dict)


@dataclass(slots=True)
class OrderRecord:
    """An order as openOrder/orderStatus report it."""

    order_id: int
    client_id: int
    perm_id: int
    account: str
    instrument: Instrument
    action: str
    quantity: Decimal
    order_ref: str
    status: str = "PreSubmitted"
    filled: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    # a what-if order's preview: the nine margin figures (initMarginBefore …
    # equityWithLoanAfter) and the commission; None for a real order
    preview: tuple[list[Decimal], Decimal] | None = None


@dataclass(slots=True)
class Fault:
    kind: str
    request: str | None = None  # a REQUESTS name; None = any request
    count: int = 1
    code: int = 0
    message: str = ""
    field: str = ""  # corrupt: the field name in the named outgoing message
    value: str = ""
    target: str = ""  # corrupt: the outgoing message's name (e.g. "updatePortfolio")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    return str(value)


def frame(fields: list[Any]) -> bytes:
    """One TWS API message: a 4-byte big-endian length, then null-terminated fields."""
    payload = b"".join(_text(f).encode() + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


def _ib_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d %H:%M:%S") + " UTC"


def _contract_short(i: Instrument, *, primary: bool = False) -> list[tuple[str, Any]]:
    """conId .. tradingClass as position, portfolio, execDetails and openOrder carry them
    (exchange, or primaryExchange in updatePortfolio)."""
    return [("conId", i.con_id), ("symbol", i.symbol), ("secType", i.sec_type),
            ("lastTradeDateOrContractMonth", ""), ("strike", "0"), ("right", ""),
            ("multiplier", i.multiplier),
            ("primaryExchange" if primary else "exchange",
             i.primary_exchange if primary else i.exchange),
            ("currency", i.currency), ("localSymbol", i.local_symbol),
            ("tradingClass", i.trading_class)]


class Connection:
    """One API client socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.summaries: set[int] = set()
        self.positions_subscribed = False
        self.account_updates: str = ""
        self.closed = False

    def send(self, fields: list[Any]) -> None:
        if not self.closed:
            self.writer.write(frame(fields))

    def close(self) -> None:
        self.closed = True
        self.writer.close()


class IbGatewaySim:
    """The gateway's state: accounts, orders, executions, connections, faults."""

    def __init__(self, accounts: list[Account], prices: PriceBook | None = None) -> None:
        self.accounts = {a.code: a for a in accounts}
        self.prices = prices or PriceBook()
        self.instruments = {i.con_id: i for i in INSTRUMENTS}
        self.clients: dict[int, Connection] = {}
        self.orders: dict[tuple[int, int], OrderRecord] = {}
        self.used_order_ids: dict[int, int] = {}
        self.executions: list[ExecRecord] = []
        self.faults: list[Fault] = []
        self.held: list[OrderRecord] = []
        self._perm_id = 1_000_000
        self._exec_seq = 0
        self.handlers = {
            Out.START_API: self._start_api,
            Out.REQ_POSITIONS: self._req_positions,
            Out.CANCEL_POSITIONS: self._cancel_positions,
            Out.REQ_ACCOUNT_SUMMARY: self._req_account_summary,
            Out.CANCEL_ACCOUNT_SUMMARY: self._cancel_account_summary,
            Out.REQ_ACCT_DATA: self._req_account_updates,
            Out.REQ_OPEN_ORDERS: self._req_open_orders,
            Out.REQ_ALL_OPEN_ORDERS: self._req_all_open_orders,
            Out.REQ_AUTO_OPEN_ORDERS: lambda conn, fields: None,
            Out.REQ_COMPLETED_ORDERS: self._req_completed_orders,
            Out.REQ_EXECUTIONS: self._req_executions,
            Out.REQ_CONTRACT_DATA: self._req_contract_details,
            Out.REQ_MKT_DATA: self._req_mkt_data,
            Out.CANCEL_MKT_DATA: lambda conn, fields: None,
            Out.PLACE_ORDER: self._place_order,
            Out.CANCEL_ORDER: self._cancel_order,
            Out.REQ_CURRENT_TIME: self._req_current_time,
            Out.REQ_HISTORICAL_DATA: self._req_historical_data,
            Out.REQ_IDS: self._req_ids,
            Out.REQ_MANAGED_ACCTS: self._managed_accounts,
            Out.REQ_MARKET_DATA_TYPE: lambda conn, fields: None,
        }

    # --- sending, with the corrupt fault applied by field name ---
    def _emit(self, conn: Connection, name: str, named: list[tuple[str, Any]]) -> None:
        for fault in self.faults:
            if fault.kind == "corrupt" and fault.target == name and fault.count > 0:
                if any(key == fault.field for key, _ in named):
                    named = [(k, fault.value if k == fault.field else v) for k, v in named]
                    fault.count -= 1
        self.faults = [f for f in self.faults if f.count > 0]
        conn.send([v for _, v in named])

    def drop(self, conn: Connection) -> None:
        """Close a client's socket; its clientId is free again at once."""
        if conn.client_id is not None and self.clients.get(conn.client_id) is conn:
            del self.clients[conn.client_id]
        conn.close()

    def error(self, conn: Connection, req_id: int, code: int, message: str) -> None:
        """TWS API: EDecoder.processErrMsgMsg (version 2, advancedOrderRejectJson)."""
        conn.send([In.ERR_MSG, 2, req_id, code, message, ""])

    # --- connection life ---
    async def serve(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        try:
            if not await self._handshake(conn):
                return
            while not conn.closed:
                fields = await self._read_message(conn)
                if fields is None:
                    return
                self._dispatch(conn, fields)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if conn.client_id is not None and self.clients.get(conn.client_id) is conn:
                del self.clients[conn.client_id]
            if not conn.closed:
                conn.close()

    async def _read_message(self, conn: Connection) -> list[str] | None:
        try:
            header = await conn.reader.readexactly(4)
            (length,) = struct.unpack(">I", header)
            if length > MAX_MESSAGE_BYTES:
                return None  # as TWS: a bad length ends the session
            payload = await conn.reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None
        fields = payload.decode(errors="replace").split("\0")
        return fields[:-1] if fields and fields[-1] == "" else fields

    async def _handshake(self, conn: Connection) -> bool:
        """``API\\0`` + length-prefixed "v<min>..<max>": answer the server version and the
        connection time (TWS API: EClient.connect, EReader's first message)."""
        if await conn.reader.readexactly(4) != b"API\0":
            conn.close()
            return False
        fields = await self._read_message(conn)
        versions = (fields or [""])[0].split(" ")[0]
        try:
            low, high = (int(v) for v in versions.removeprefix("v").split(".."))
        except ValueError:
            conn.close()
            return False
        if not versions.startswith("v") or not low <= SERVER_VERSION <= high:
            conn.close()
            return False
        conn.send([SERVER_VERSION, _ib_time(datetime.now(tz=UTC))])
        await conn.writer.drain()
        first = await self._read_message(conn)
        if not first or first[0] != str(Out.START_API):
            conn.close()  # the real gateway waits for startApi before anything else
            return False
        self._start_api(conn, first)
        await conn.writer.drain()
        return not conn.closed

    def _dispatch(self, conn: Connection, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except (ValueError, IndexError):
            msg_id = -1
        handler = self.handlers.get(msg_id)
        if handler is None:
            self.error(conn, -1, ERR_UNKNOWN_MESSAGE, "Fatal Error: Unknown message id.")
            conn.close()
            return
        if msg_id in REQUESTS and self._faulted(conn, msg_id, fields):
            return
        try:
            handler(conn, fields)
        except (ValueError, IndexError, ArithmeticError):
            # a request with missing or malformed fields (InvalidOperation included)
            self.error(conn, -1, ERR_READING_REQUEST, "Error reading request. Message id "
                       f"{msg_id}.")
            self.drop(conn)

    def _faulted(self, conn: Connection, msg_id: int, fields: list[str]) -> bool:
        name, req_index = REQUESTS[msg_id]
        fault = next((f for f in self.faults if f.kind not in ("corrupt", "hold", "reject")
                      and f.request in (None, name) and f.count > 0), None)
        if fault is None:
            return False
        fault.count -= 1
        self.faults = [f for f in self.faults if f.count > 0]
        req_id = int(fields[req_index]) if req_index is not None else -1
        if fault.kind == "disconnect":
            self.drop(conn)
        elif fault.kind == "pacing":
            self.error(conn, req_id, fault.code or ERR_MAX_RATE, fault.message or
                       "Max rate of messages per second has been exceeded:max=50 rec=51 (1)")
        elif fault.kind == "not_connected":
            self.error(conn, -1, fault.code or ERR_CONNECTIVITY_LOST, fault.message or
                       "Connectivity between IB and Trader Workstation has been lost.")
        elif fault.kind == "error":
            self.error(conn, req_id, fault.code, fault.message)
        return True  # "silence": no answer at all

    def _start_api(self, conn: Connection, fields: list[str]) -> None:
        """startApi (71, version 2, clientId, optionalCapabilities)."""
        client_id = int(fields[2])
        if client_id in self.clients:
            self.error(conn, -1, ERR_CLIENT_ID_IN_USE, "Unable to connect as the client id "
                       "is already in use. Retry with a unique client id.")
            conn.close()
            return
        conn.client_id = client_id
        self.clients[client_id] = conn
        self._managed_accounts(conn, fields)
        conn.send([In.NEXT_VALID_ID, 1, self.used_order_ids.get(client_id, 0) + 1])
        for code, text in ((2104, "Market data farm connection is OK:usfarm"),
                           (2106, "HMDS data farm connection is OK:ushmds")):
            self.error(conn, -1, code, text)

    def _managed_accounts(self, conn: Connection, fields: list[str]) -> None:
        conn.send([In.MANAGED_ACCTS, 1, ",".join(sorted(self.accounts))])

    def _req_current_time(self, conn: Connection, fields: list[str]) -> None:
        conn.send([In.CURRENT_TIME, 1, int(datetime.now(tz=UTC).timestamp())])

    def _req_ids(self, conn: Connection, fields: list[str]) -> None:
        conn.send([In.NEXT_VALID_ID, 1, self.used_order_ids.get(conn.client_id or 0, 0) + 1])

    # --- accounts ---
    def rate(self, currency: str, base: str) -> Decimal:
        """Units of ``base`` per unit of ``currency``, at the EUR.USD mid."""
        if currency == base:
            return Decimal(1)
        eurusd = self.prices.mark(self.instruments[12087792])
        if (currency, base) == ("EUR", "USD"):
            return eurusd
        if (currency, base) == ("USD", "EUR"):
            return 1 / eurusd
        raise ValueError(f"no rate for {currency}{base}")

    def values(self, account: Account) -> dict[str, Decimal]:
        """Account values in the base currency, rounded to cents."""
        base = account.currency
        cash = sum((amount * self.rate(ccy, base) for ccy, amount in account.cash.items()),
                   Decimal(0))
        market = margin = unrealized = realized = Decimal(0)
        for h in account.holdings.values():
            rate = self.rate(h.instrument.currency, base)
            value = h.quantity * self.prices.mark(h.instrument) * h.instrument.factor
            market += value * rate
            margin += abs(value) * rate * h.instrument.margin_rate
            unrealized += (value - h.quantity * h.avg_cost) * rate
            realized += h.realized * rate
        net = cash + market
        figures = {"NetLiquidation": net, "TotalCashValue": cash, "SettledCash": cash,
                   "EquityWithLoanValue": net, "GrossPositionValue": market,
                   "InitMarginReq": margin, "MaintMarginReq": margin,
                   "AvailableFunds": net - margin, "ExcessLiquidity": net - margin,
                   "BuyingPower": (net - margin) * 4, "UnrealizedPnL": unrealized,
                   "RealizedPnL": realized}
        return {k: v.quantize(CENT, ROUND_HALF_UP) for k, v in figures.items()}

    def _portfolio_message(self, account: Account, h: Holding) -> list[tuple[str, Any]]:
        """TWS API: EDecoder.processPortfolioValueMsg, version 8."""
        mark = self.prices.mark(h.instrument)
        value = h.quantity * mark * h.instrument.factor
        return [("msgId", In.PORTFOLIO_VALUE), ("version", 8),
                *_contract_short(h.instrument, primary=True),
                ("position", h.quantity), ("marketPrice", mark), ("marketValue", value),
                ("averageCost", h.avg_cost),
                ("unrealizedPNL", (value - h.quantity * h.avg_cost).quantize(CENT)),
                ("realizedPNL", h.realized.quantize(CENT)), ("accountName", account.code)]

    def _send_account_download(self, conn: Connection, account: Account) -> None:
        """updateAccountValue*, updatePortfolio*, updateAccountTime, accountDownloadEnd."""
        rows: list[tuple[str, Any, str]] = [
            ("AccountCode", account.code, ""), ("AccountType", "INDIVIDUAL", ""),
            ("Currency", account.currency, account.currency)]
        rows += [(k, v, account.currency) for k, v in self.values(account).items()]
        rows += [("CashBalance", amount.quantize(CENT), ccy)
                 for ccy, amount in sorted(account.cash.items())]
        # what one unit of each currency is worth in the base currency, as TWS reports it
        rows += [("ExchangeRate", self.rate(ccy, account.currency).quantize(
            Decimal("0.0000001"), ROUND_HALF_UP), ccy) for ccy in ("EUR", "USD")]
        for key, value, currency in rows:
            self._emit(conn, "updateAccountValue", [
                ("msgId", In.ACCT_VALUE), ("version", 2), ("key", key), ("value", value),
                ("currency", currency), ("accountName", account.code)])
        for h in account.holdings.values():
            self._emit(conn, "updatePortfolio", self._portfolio_message(account, h))
        conn.send([In.ACCT_UPDATE_TIME, 1, datetime.now(tz=UTC).strftime("%H:%M")])
        conn.send([In.ACCT_DOWNLOAD_END, 1, account.code])

    def _req_account_updates(self, conn: Connection, fields: list[str]) -> None:
        """reqAccountUpdates (6, version 2, subscribe, acctCode)."""
        subscribe, code = fields[2] == "1", fields[3]
        if not subscribe:
            conn.account_updates = ""
            return
        account = self.accounts.get(code)
        if account is None:
            self.error(conn, -1, ERR_VALIDATION, "Error validating request.-'bB' : cause - "
                       f"Invalid account code {code}")
            return
        conn.account_updates = code
        self._send_account_download(conn, account)

    def _req_account_summary(self, conn: Connection, fields: list[str]) -> None:
        """reqAccountSummary (62, version 1, reqId, group, tags): accountSummary per account
        and tag, accountSummaryEnd. At most two at once, as the real gateway allows."""
        req_id, group, tags = int(fields[2]), fields[3], fields[4].split(",")
        if len(conn.summaries) >= MAX_ACCOUNT_SUMMARIES:
            self.error(conn, req_id, ERR_MAX_ACCOUNT_SUMMARY,
                       "Maximum number of account summary requests exceeded.")
            return
        if group != "All":
            self.error(conn, req_id, ERR_VALIDATION, f"Error validating request.-'bH' : "
                       f"cause - Unknown group {group}")
            return
        conn.summaries.add(req_id)
        for account in sorted(self.accounts.values(), key=lambda a: a.code):
            values = self.values(account)
            known = {**{k: (v, account.currency) for k, v in values.items()},
                     "AccountType": ("INDIVIDUAL", "")}
            for tag in tags:
                if tag in known:
                    value, currency = known[tag]
                    self._emit(conn, "accountSummary", [
                        ("msgId", In.ACCOUNT_SUMMARY), ("version", 1), ("reqId", req_id),
                        ("account", account.code), ("tag", tag), ("value", value),
                        ("currency", currency)])
        conn.send([In.ACCOUNT_SUMMARY_END, 1, req_id])

    def _cancel_account_summary(self, conn: Connection, fields: list[str]) -> None:
        conn.summaries.discard(int(fields[2]))

    def _position_message(self, account: Account, h: Holding) -> list[tuple[str, Any]]:
        """TWS API: EDecoder.processPositionDataMsg, version 3."""
        return [("msgId", In.POSITION_DATA), ("version", 3), ("account", account.code),
                *_contract_short(h.instrument), ("position", h.quantity),
                ("avgCost", h.avg_cost)]

    def _req_positions(self, conn: Connection, fields: list[str]) -> None:
        """reqPositions (61): position per account and contract, then positionEnd."""
        conn.positions_subscribed = True
        for account in sorted(self.accounts.values(), key=lambda a: a.code):
            for h in account.holdings.values():
                self._emit(conn, "position", self._position_message(account, h))
        conn.send([In.POSITION_END, 1])

    def _cancel_positions(self, conn: Connection, fields: list[str]) -> None:
        conn.positions_subscribed = False

    # --- contracts and market data ---
    def find(self, con_id: str, symbol: str, sec_type: str, currency: str,
             exchange: str) -> Instrument | None:
        """The contract a request names: by conId, else symbol, secType, currency and
        exchange (SMART, the primary exchange or IDEALPRO)."""
        if con_id not in ("", "0"):
            return self.instruments.get(int(con_id))
        for i in INSTRUMENTS:
            if (symbol, sec_type) == (i.symbol, i.sec_type) and currency in ("", i.currency) \
                    and exchange in ("", i.exchange, i.primary_exchange):
                return i
        return None

    def _contract_from(self, fields: list[str], start: int) -> Instrument | None:
        """conId, symbol, secType, …, exchange (+7), primaryExchange, currency (+9)."""
        return self.find(fields[start], fields[start + 1], fields[start + 2],
                         fields[start + 9], fields[start + 7])

    def _req_contract_details(self, conn: Connection, fields: list[str]) -> None:
        """reqContractDetails (9, version 8, reqId, contract…): contractDetails and
        contractDetailsEnd, or error 200 (TWS API: EDecoder.processContractDataMsg)."""
        req_id = int(fields[2])
        i = self._contract_from(fields, 3)
        if i is None:
            self.error(conn, req_id, ERR_NO_SECURITY_DEFINITION,
                       "No security definition has been found for the request")
            return
        conn.send([In.CONTRACT_DATA, req_id, i.symbol, i.sec_type, "", "0", "", i.exchange,
                   i.currency, i.local_symbol, i.trading_class, i.trading_class, i.con_id,
                   i.min_tick, i.multiplier, "ACTIVETIM,AD,ADJUST,ALERT,MKT,LMT,STP",
                   f"{i.exchange},{i.primary_exchange or i.exchange}", 1, 0, i.long_name,
                   i.primary_exchange, "", "", "", "", "US/Eastern", "", "", "", "", 0, 1,
                   "", "", "26", "", "COMMON" if i.sec_type == "STK" else "", 1, 1, 1])
        conn.send([In.CONTRACT_DATA_END, 1, req_id])

    def _req_mkt_data(self, conn: Connection, fields: list[str]) -> None:
        """reqMktData (1, version 11, reqId, contract…, dnc, ticks, snapshot, …): tickPrice
        bid (1) and ask (2), last (4) for stocks; tickSnapshotEnd for a snapshot."""
        req_id = int(fields[2])
        i = self._contract_from(fields, 3)
        if i is None:
            self.error(conn, req_id, ERR_NO_SECURITY_DEFINITION,
                       "No security definition has been found for the request")
            return
        conn.send([In.MARKET_DATA_TYPE, 1, req_id, 1])
        bid, ask = self.prices.bid_ask(i)
        ticks = [(1, bid), (2, ask)] + ([(4, self.prices.last(i))] if i.sec_type == "STK"
                                         else [])
        for tick_type, price in ticks:
            self._emit(conn, "tickPrice", [
                ("msgId", In.TICK_PRICE), ("version", 6), ("reqId", req_id),
                ("tickType", tick_type), ("price", price), ("size", 100), ("attrMask", 0)])
        if fields[17] == "1":
            conn.send([In.TICK_SNAPSHOT_END, 1, req_id])

    def _req_historical_data(self, conn: Connection, fields: list[str]) -> None:
        """reqHistoricalData (20, reqId, contract…, includeExpired, endDateTime,
        barSizeSetting, durationStr, useRTH, whatToShow, formatDate, keepUpToDate,
        chartOptions): historicalData (17: reqId, start, end, count, then date, open, high,
        low, close, volume, wap, barCount per bar; TWS API: EDecoder.processHistoricalDataMsg
        before 196) with the file's bars up to the current one, in progress. EUR.USD has
        "1 hour" bars, GOOG "1 day" bars; any other size: error 162, no data."""
        req_id = int(fields[1])
        i = self._contract_from(fields, 2)
        if i is None:
            self.error(conn, req_id, ERR_NO_SECURITY_DEFINITION,
                       "No security definition has been found for the request")
            return
        bar_size, duration, format_date = fields[16], fields[17], fields[20]
        count = _bars_in(duration, bar_size)
        if bar_size != self.prices.bar_sizes[i.con_id] or count is None:
            self.error(conn, req_id, ERR_HISTORICAL_DATA, "Historical Market Data Service "
                       f"error message:HMDS query returned no data: {i.local_symbol}@"
                       f"{i.exchange} {fields[19]}")
            return
        rows = self.prices.history(i, count)
        daily = bar_size == "1 day"

        def stamp(when: datetime) -> str:
            if format_date == "2":
                return str(int(when.timestamp()))
            return when.strftime("%Y%m%d" if daily else "%Y%m%d  %H:%M:%S")

        message: list[Any] = [In.HISTORICAL_DATA, req_id, stamp(rows[0].time),
                              stamp(datetime.now(tz=UTC)), len(rows)]
        for row in rows:
            message += [stamp(row.time), row.open, row.high, row.low, row.close, -1, -1, -1]
        conn.send(message)

    # --- orders ---
    def _next_perm_id(self) -> int:
        self._perm_id += 1
        return self._perm_id

    def _place_order(self, conn: Connection, fields: list[str]) -> None:
        """placeOrder (3, orderId, contract, secIdType, secId, action, totalQuantity,
        orderType, lmtPrice, auxPrice, tif, ocaGroup, account, openClose, origin, orderRef,
        …): a market order fills at once (BUY at the ask, SELL at the bid)."""
        client_id = conn.client_id or 0
        order_id = int(fields[1])
        if order_id <= self.used_order_ids.get(client_id, 0):  # also an existing order's
            self.error(conn, order_id, ERR_DUPLICATE_ORDER_ID, "Duplicate order id")
            return
        i = self._contract_from(fields, 2)
        if i is None:
            self.error(conn, order_id, ERR_NO_SECURITY_DEFINITION,
                       "No security definition has been found for the request")
            return
        action, quantity, order_type = fields[16], Decimal(fields[17] or "0"), fields[18]
        account, order_ref = fields[23], fields[26]
        what_if = len(fields) == PLAIN_ORDER_FIELDS and fields[WHAT_IF_INDEX] == "1"
        refusal = "The stand-in accepts plain market orders only" \
            if len(fields) != PLAIN_ORDER_FIELDS else \
            self._order_refusal(account, i, action, quantity, order_type,
                                check_margin=not what_if)
        if refusal:
            self.error(conn, order_id, ERR_ORDER_REJECTED, f"Order rejected - reason:{refusal}")
            return
        self.used_order_ids[client_id] = max(self.used_order_ids.get(client_id, 0), order_id)
        order = OrderRecord(order_id, client_id, self._next_perm_id(), account, i, action,
                            quantity, order_ref)
        if what_if:
            # a preview: the margin figures in openOrder, nothing executed or kept
            order.preview = self._preview(self.accounts[account], order)
            conn.send(open_order_fields(order))
            return
        self.orders[(client_id, order_id)] = order
        self.submit(order)

    def _preview(self, account: Account, order: OrderRecord) -> tuple[list[Decimal], Decimal]:
        """A what-if order's margins in the base currency: initial and maintenance margin
        (equal here) and equity with loan, before, change and after; and its commission."""
        i = order.instrument
        values = self.values(account)
        held = account.holdings.get(i.con_id)
        now = held.quantity if held else Decimal(0)
        after = now + (order.quantity if order.action == "BUY" else -order.quantity)
        per_unit = self.prices.mark(i) * i.factor * self.rate(i.currency, account.currency) \
            * i.margin_rate
        change = ((abs(after) - abs(now)) * per_unit).quantize(CENT, ROUND_HALF_UP)
        bid, ask = self.prices.bid_ask(i)
        fee = self._commission(i, order.quantity, ask if order.action == "BUY" else bid)
        equity = values["EquityWithLoanValue"]
        margin = values["InitMarginReq"]
        return ([margin, margin, equity, change, change, -fee, margin + change,
                 margin + change, equity - fee], fee)

    def _order_refusal(self, account: str, i: Instrument, action: str, quantity: Decimal,
                       order_type: str, *, check_margin: bool = True) -> str:
        if account not in self.accounts:
            return f"The account code {account or '(none)'} is not managed by this gateway"
        if action not in ("BUY", "SELL"):
            return f"Invalid action {action}"
        if quantity <= 0 or quantity != quantity.to_integral_value():
            return f"Invalid order size {quantity}"
        if order_type != "MKT":
            return "The stand-in accepts market orders (MKT) only"
        fault = next((f for f in self.faults if f.kind == "reject" and f.count > 0), None)
        if fault is not None:
            fault.count -= 1
            self.faults = [f for f in self.faults if f.count > 0]
            return fault.message or "Rejected by a risk check"
        if not check_margin:
            return ""
        return self._margin_refusal(self.accounts[account], i, action, quantity)

    def _margin_refusal(self, account: Account, i: Instrument, action: str,
                        quantity: Decimal) -> str:
        held = account.holdings.get(i.con_id)
        now = held.quantity if held else Decimal(0)
        after = now + (quantity if action == "BUY" else -quantity)
        if abs(after) <= abs(now):
            return ""  # reducing a position never needs margin
        values = self.values(account)
        rate = self.rate(i.currency, account.currency)
        extra = (abs(after) - abs(now)) * self.prices.mark(i) * i.factor * rate * i.margin_rate
        if values["InitMarginReq"] + extra > values["EquityWithLoanValue"]:
            return (f"YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION "
                    f"YOUR EQUITY WITH LOAN VALUE [{values['EquityWithLoanValue']} "
                    f"{account.currency}] MUST EXCEED THE INITIAL MARGIN "
                    f"[{(values['InitMarginReq'] + extra).quantize(CENT)} "
                    f"{account.currency}]")
        return ""

    def submit(self, order: OrderRecord) -> None:
        """Report the order submitted, then fill it unless a "hold" fault keeps it working."""
        order.status = "Submitted"
        self._broadcast_order(order)
        fault = next((f for f in self.faults if f.kind == "hold" and f.count > 0), None)
        if fault is not None:
            fault.count -= 1
            self.faults = [f for f in self.faults if f.count > 0]
            self.held.append(order)
            return
        self.fill(order)

    def release(self) -> int:
        """Fill every held order; the number filled."""
        held, self.held = self.held, []
        for order in held:
            if order.status == "Submitted":
                self.fill(order)
        return len(held)

    def fill(self, order: OrderRecord) -> ExecRecord:
        account = self.accounts[order.account]
        bid, ask = self.prices.bid_ask(order.instrument)
        price = ask if order.action == "BUY" else bid
        signed = order.quantity if order.action == "BUY" else -order.quantity
        commission = self._commission(order.instrument, order.quantity, price)
        realized = self._book(account, order.instrument, signed, price, commission)
        self._exec_seq += 1
        record = ExecRecord(
            exec_id=f"0000e0d5.{0x6571000 + self._exec_seq:08x}.01.01",
            order_id=order.order_id, client_id=order.client_id, perm_id=order.perm_id,
            account=order.account, instrument=order.instrument,
            side="BOT" if order.action == "BUY" else "SLD", shares=order.quantity,
            price=price, time=datetime.now(tz=UTC), order_ref=order.order_ref,
            commission=commission, realized=realized)
        self.executions.append(record)
        order.status, order.filled, order.avg_price = "Filled", order.quantity, price
        self._broadcast_fill(order, record)
        return record

    @staticmethod
    def _commission(i: Instrument, quantity: Decimal, price: Decimal) -> Decimal:
        """IB's fixed pricing, in USD: stocks 0.005 per share (1.00 minimum, 1 % of the
        value at most); IDEALPRO 0.2 basis points of the value (2.00 minimum)."""
        value = quantity * price * i.factor
        if i.sec_type == "STK":
            fee = min(max(quantity * Decimal("0.005"), Decimal(1)), value / 100)
        else:
            fee = max(value * Decimal("0.00002"), Decimal(2))
        return fee.quantize(Decimal("0.0001"), ROUND_HALF_UP)

    @staticmethod
    def _book(account: Account, i: Instrument, signed: Decimal, price: Decimal,
              commission: Decimal) -> Decimal | None:
        """Apply a fill of ``signed`` units; IB's realized P&L of its closing part (net of
        the opening commission in avgCost and of this fill's commission), None if none."""
        h = account.holdings.setdefault(i.con_id, Holding(i))
        account.cash[i.currency] = account.cash.get(i.currency, Decimal(0)) \
            - signed * price * i.factor - commission
        now, size = h.quantity, abs(signed)
        realized = None
        closing = min(size, abs(now)) if now and (now > 0) != (signed > 0) else Decimal(0)
        if closing:
            share = commission * closing / size
            if now > 0:  # a long sold: proceeds less cost basis
                realized = closing * price * i.factor - share - closing * h.avg_cost
            else:  # a short bought back: cost basis less what buying back cost
                realized = closing * h.avg_cost - (closing * price * i.factor + share)
            h.realized += realized
        opening = size - closing
        if opening:
            # avgCost carries the commission: it raises a long's cost and lowers what a
            # short was sold for
            left = commission - (commission * closing / size)
            held = abs(now) - closing
            basis = opening * price * i.factor + (left if signed > 0 else -left)
            h.avg_cost = (held * h.avg_cost + basis) / (held + opening)
        h.quantity = now + signed
        if h.quantity == 0:
            h.avg_cost = Decimal(0)
        return realized

    def _order_messages(self, order: OrderRecord) -> tuple[list[Any], list[Any]]:
        remaining = order.quantity - order.filled
        status = [In.ORDER_STATUS, order.order_id, order.status, order.filled, remaining,
                  order.avg_price, order.perm_id, 0, order.avg_price, order.client_id, "",
                  0]
        return open_order_fields(order), status

    def _broadcast_order(self, order: OrderRecord) -> None:
        opened, status = self._order_messages(order)
        conn = self.clients.get(order.client_id)
        if conn is not None:
            conn.send(opened)
            conn.send(status)

    def _broadcast_fill(self, order: OrderRecord, record: ExecRecord) -> None:
        """execDetails (reqId -1), openOrder and orderStatus Filled, commissionReport to the
        order's client; portfolio, account values and position updates to subscribers."""
        conn = self.clients.get(order.client_id)
        if conn is not None:
            self._emit(conn, "execDetails", exec_fields(-1, record))
            opened, status = self._order_messages(order)
            conn.send(opened)
            conn.send(status)
            self._emit(conn, "commissionReport", commission_fields(record))
        account = self.accounts[order.account]
        h = account.holdings[order.instrument.con_id]
        for other in list(self.clients.values()):
            if other.account_updates == account.code:
                self._send_account_download(other, account)
                self._emit(other, "updatePortfolio", self._portfolio_message(account, h))
            if other.positions_subscribed:
                self._emit(other, "position", self._position_message(account, h))
        if h.quantity == 0:
            del account.holdings[order.instrument.con_id]

    def _cancel_order(self, conn: Connection, fields: list[str]) -> None:
        """cancelOrder (4, version 1, orderId, manualOrderCancelTime)."""
        order = self.orders.get((conn.client_id or 0, int(fields[2])))
        if order is None or order.status != "Submitted":
            self.error(conn, int(fields[2]), 10148, "OrderId that needs to be cancelled "
                       "cannot be cancelled, state: Filled.")
            return
        order.status = "Cancelled"
        self._broadcast_order(order)
        self.error(conn, order.order_id, ERR_ORDER_CANCELLED, "Order Canceled - reason:")

    def _working(self, client_id: int | None) -> list[OrderRecord]:
        return [o for o in self.orders.values() if o.status == "Submitted"
                and (client_id is None or o.client_id == client_id)]

    def _req_open_orders(self, conn: Connection, fields: list[str]) -> None:
        """reqOpenOrders (5): this client's working orders, openOrder + orderStatus each,
        then openOrderEnd."""
        self._send_open_orders(conn, self._working(conn.client_id))

    def _req_all_open_orders(self, conn: Connection, fields: list[str]) -> None:
        """reqAllOpenOrders (16): every client's working orders."""
        self._send_open_orders(conn, self._working(None))

    def _send_open_orders(self, conn: Connection, orders: list[OrderRecord]) -> None:
        for order in orders:
            opened, status = self._order_messages(order)
            conn.send(opened)
            conn.send(status)
        conn.send([In.OPEN_ORDER_END, 1])

    def _req_completed_orders(self, conn: Connection, fields: list[str]) -> None:
        conn.send([In.COMPLETED_ORDERS_END])

    def _req_executions(self, conn: Connection, fields: list[str]) -> None:
        """reqExecutions (7, version 3, reqId, clientId, acctCode, time, symbol, secType,
        exchange, side): execDetails and commissionReport per match, then execDetailsEnd.
        ``time`` is "yyyymmdd hh:mm:ss" in UTC (or with a time zone name)."""
        req_id, client_id, account, since = int(fields[2]), fields[3], fields[4], fields[5]
        low = _parse_filter_time(since)
        for record in self.executions:
            if client_id not in ("", "0") and record.client_id != int(client_id):
                continue
            if account and record.account != account:
                continue
            if low is not None and record.time < low:
                continue
            self._emit(conn, "execDetails", exec_fields(req_id, record))
            self._emit(conn, "commissionReport", commission_fields(record))
        conn.send([In.EXECUTION_DATA_END, 1, req_id])

    # --- admin (not TWS API) ---
    def trade(self, account: str, symbol: str, side: str, quantity: str,
              order_ref: str = "") -> dict[str, Any]:
        """An execution as if someone traded in TWS (clientId 0): "EURUSD" or "GOOG"."""
        i = next((x for x in INSTRUMENTS if _symbol(x) == symbol), None)
        if i is None:
            raise ValueError(f"unknown symbol {symbol}")
        action = {"buy": "BUY", "sell": "SELL"}[side]
        refusal = self._order_refusal(account, i, action, Decimal(quantity), "MKT")
        if refusal:
            raise ValueError(refusal)
        self.used_order_ids[0] = self.used_order_ids.get(0, 0) + 1
        order = OrderRecord(self.used_order_ids[0], 0, self._next_perm_id(), account, i,
                            action, Decimal(quantity), order_ref)
        self.orders[(0, order.order_id)] = order
        record = self.fill(order)
        return {"exec_id": record.exec_id, "price": str(record.price),
                "realized": None if record.realized is None else str(record.realized)}

    def state(self) -> dict[str, Any]:
        return {
            "step": self.prices.step,
            "quotes": {_symbol(i): [str(p) for p in self.prices.bid_ask(i)]
                       for i in INSTRUMENTS},
            "clients": sorted(self.clients),
            "faults": len(self.faults),
            "held": len(self.held),
            "accounts": {a.code: {
                "currency": a.currency,
                "cash": {c: str(v) for c, v in a.cash.items()},
                "values": {k: str(v) for k, v in self.values(a).items()},
                "positions": {_symbol(h.instrument): {"quantity": str(h.quantity),
                                                      "avg_cost": str(h.avg_cost)}
                              for h in a.holdings.values()},
            } for a in self.accounts.values()},
            "executions": [{"exec_id": e.exec_id, "account": e.account,
                            "order_ref": e.order_ref, "side": e.side,
                            "shares": str(e.shares), "price": str(e.price),
                            "commission": str(e.commission),
                            "realized": None if e.realized is None else str(e.realized)}
                           for e in self.executions],
        }

    def admin(self, command: dict[str, Any]) -> Any:
        """One admin command: {"op": ...}. Raises ValueError on a bad one."""
        op = command.pop("op", "")
        if op == "state":
            return self.state()
        if op == "fault":
            if command.get("kind") not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {command.get('kind')!r}")
            self.faults.append(Fault(**command))
            return len(self.faults)
        if op == "clear_faults":
            self.faults = []
            return 0
        if op == "advance":
            self.prices.step += int(command.get("bars", 1))
            return self.prices.step
        if op == "release":
            return self.release()
        if op == "trade":
            return self.trade(**command)
        if op == "kick":
            kicked = list(self.clients.values())
            for conn in kicked:
                self.drop(conn)
            return len(kicked)
        raise ValueError(f"unknown op {op!r}")

    async def serve_admin(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = {"ok": True, "result": self.admin(json.loads(line))}
                except (ValueError, TypeError, KeyError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


def _symbol(i: Instrument) -> str:
    """The gateway's symbol: EURUSD for a CASH pair, the ticker for a stock."""
    return i.symbol + i.currency if i.sec_type == "CASH" else i.symbol


def _bars_in(duration: str, bar_size: str) -> int | None:
    """How many bars of ``bar_size`` ("1 hour", "1 day") a durationStr ("7200 S",
    "2 D", "1 W") spans, at most 1000; None for a duration the stand-in does not read."""
    units = {"S": 1, "D": 86_400, "W": 604_800}
    sizes = {"1 hour": 3_600, "1 day": 86_400}
    parts = duration.split()
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in units or \
            bar_size not in sizes:
        return None
    seconds = int(parts[0]) * units[parts[1]]
    return min(1000, max(1, -(-seconds // sizes[bar_size])))


def _parse_filter_time(text: str) -> datetime | None:
    if not text:
        return None
    parts = text.replace("-", " ").split()
    stamp = datetime.strptime(parts[0] + parts[1] + "+0000", "%Y%m%d%H:%M:%S%z")
    if len(parts) > 2 and parts[2] != "UTC":  # a wall-clock time in that zone
        from zoneinfo import ZoneInfo

        return stamp.replace(tzinfo=ZoneInfo(parts[2])).astimezone(UTC)
    return stamp


def exec_fields(req_id: int, e: ExecRecord) -> list[tuple[str, Any]]:
    """execDetails (11) at server version 178 (TWS API: EDecoder.processExecutionDataMsg;
    no version field since MIN_SERVER_VER_LAST_LIQUIDITY, pendingPriceRevision at 178)."""
    return [("msgId", In.EXECUTION_DATA), ("reqId", req_id), ("orderId", e.order_id),
            *_contract_short(e.instrument), ("execId", e.exec_id), ("time", _ib_time(e.time)),
            ("acctNumber", e.account), ("exchange", e.instrument.exchange
                                        if e.instrument.sec_type == "CASH" else "ISLAND"),
            ("side", e.side), ("shares", e.shares), ("price", e.price),
            ("permId", e.perm_id), ("clientId", e.client_id), ("liquidation", 0),
            ("cumQty", e.shares), ("avgPrice", e.price), ("orderRef", e.order_ref),
            ("evRule", ""), ("evMultiplier", ""), ("modelCode", ""), ("lastLiquidity", 2),
            ("pendingPriceRevision", 0)]


def commission_fields(e: ExecRecord) -> list[tuple[str, Any]]:
    """commissionReport (59, version 1, execId, commission, currency, realizedPNL, yield,
    yieldRedemptionDate); an opening execution's realizedPNL is UNSET (Double.MAX_VALUE)."""
    realized = UNSET_DOUBLE_TEXT if e.realized is None else e.realized.quantize(
        Decimal("0.000001"), ROUND_HALF_UP)
    return [("msgId", In.COMMISSION_REPORT), ("version", 1), ("execId", e.exec_id),
            ("commission", e.commission), ("currency", e.instrument.currency),
            ("realizedPNL", realized), ("yield", UNSET_DOUBLE_TEXT),
            ("yieldRedemptionDate", "")]


def open_order_fields(o: OrderRecord) -> list[Any]:
    """openOrder (5) of a plain market order at server version 178, field by field as
    EDecoder.processOpenOrder / OrderDecoder read it (no version field since
    MIN_SERVER_VER_ORDER_CONTAINER; no faProfile since 177)."""
    i = o.instrument
    unset, unset_int = UNSET_DOUBLE_TEXT, UNSET_INTEGER_TEXT
    head = [In.OPEN_ORDER, o.order_id, i.con_id, i.symbol, i.sec_type, "", "0", "",
            i.multiplier, i.exchange, i.currency, i.local_symbol, i.trading_class,
            o.action, o.quantity, "MKT", "0", "0", "DAY", "", o.account, "", 0, o.order_ref,
            o.client_id, o.perm_id, 0, 0, "0", "", ""]  # …, goodAfterTime, sharesAllocation
    fa_to_vol = ["", "", "",  # faGroup, faMethod, faPercentage
                 "", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, firm
                 0, "", -1, 0,  # shortSaleSlot, designatedLocation, exemptCode, auction
                 unset, unset, unset, unset, unset,  # starting/ref price, delta, ranges
                 0, 0, 0, 0, unset_int, 0, 0, 0, unset,  # displaySize … nbboPriceCap
                 0, 0, unset, 0, "", unset]  # parentId, trigger, vol, volType, dnType, aux
    tail = [0, 0, unset, unset, unset, "",  # continuousUpdate … basisPointsType
            "", 0, 0, 0,  # comboLegsDescrip, legs, orderLegs, smartComboRoutingParams
            "", "", unset, "",  # scaleInit/Subs level size, scalePriceIncrement, hedgeType
            0, "", "", 0, 0, "",  # optOutSmartRouting, clearing acct/intent, notHeld, dnc, algo
            *_order_state(o),  # solicited, whatIf, status, margins, commission, warning
            0, 0,  # randomizeSize, randomizePrice
            0,  # conditions
            "", unset, unset, unset, unset, unset, unset, 0,  # adjusted order params
            "", "", "", unset, 0, 0, 0, 0,  # softDollarTier, cashQty, …, usePriceMgmtAlgo
            unset_int, "", 0,  # duration, postToAts, autoCancelParent
            unset_int, unset_int, unset, unset, unset]  # minTradeQty … midOffsetAtHalf
    return head + fa_to_vol + tail


def _order_state(o: OrderRecord) -> list[Any]:
    """solicited, whatIf, then OrderState: status, the nine margin figures, commission,
    min and max commission, commission currency, warning text."""
    unset = UNSET_DOUBLE_TEXT
    if o.preview is None:
        return [0, 0, o.status, *([""] * 9), unset, unset, unset, "", ""]
    margins, fee = o.preview
    currency = o.instrument.currency
    return [0, 1, "PreSubmitted", *margins, fee, unset, unset, currency, ""]


def parse_account(text: str) -> Account:
    """"DU1234567:USD:100000" → an account with that base currency and cash."""
    code, currency, cash = text.split(":")
    return Account(code=code, currency=currency, cash={currency: Decimal(cash)})


DEFAULT_ACCOUNTS = ("DU1234567:USD:100000", "DU7654321:EUR:50000")


async def _replay(gateway: IbGatewaySim, bar_seconds: float) -> None:
    """Move the prices one row on every ``bar_seconds`` (and push the new figures to the
    clients subscribed to account updates)."""
    while True:
        await asyncio.sleep(bar_seconds)
        gateway.prices.step += 1
        for conn in list(gateway.clients.values()):
            account = gateway.accounts.get(conn.account_updates)
            if account is not None:
                gateway._send_account_download(conn, account)


async def run(host: str, port: int, admin_port: int, gateway: IbGatewaySim,
              bar_seconds: float = 0.0) -> None:
    server = await asyncio.start_server(gateway.serve, host, port)
    admin = await asyncio.start_server(gateway.serve_admin, host, admin_port)
    bound = server.sockets[0].getsockname()[1]
    admin_bound = admin.sockets[0].getsockname()[1]
    print(f"IB Gateway stand-in listening on {host}:{bound} admin {host}:{admin_bound} "
          f"server version {SERVER_VERSION}", flush=True)
    tasks = [server.serve_forever(), admin.serve_forever()]
    if bar_seconds > 0:
        tasks.append(_replay(gateway, bar_seconds))
    async with server, admin:
        await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4002)  # IB Gateway's paper port
    parser.add_argument("--admin-port", type=int, default=0)
    parser.add_argument("--account", action="append",
                        help="CODE:CURRENCY:CASH, repeatable (default: "
                             + ", ".join(DEFAULT_ACCOUNTS) + ")")
    parser.add_argument("--trade", action="append", default=[],
                        help="ACCOUNT:SYMBOL:SIDE:QUANTITY[:ORDERREF], repeatable: executed "
                             "at start as if made in TWS (e.g. DU1234567:GOOG:buy:100)")
    parser.add_argument("--start-bar", type=int, default=0)
    parser.add_argument("--bar-seconds", type=float, default=0.0,
                        help="move the prices one row on every N seconds (0: only by the "
                             "admin's advance)")
    args = parser.parse_args(argv)
    accounts = [parse_account(a) for a in (args.account or DEFAULT_ACCOUNTS)]
    gateway = IbGatewaySim(accounts, PriceBook(start=args.start_bar))
    for trade in args.trade:
        account, symbol, side, quantity, *ref = trade.split(":")
        gateway.trade(account, symbol, side, quantity, order_ref=ref[0] if ref else "")
    try:
        asyncio.run(run(args.host, args.port, args.admin_port, gateway, args.bar_seconds))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
