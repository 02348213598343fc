"""The IB Gateway stand-in speaks the real TWS API, as the official ``ibapi`` package
(ibapi-stable 10.50, Interactive Brokers' own client) encodes and decodes it.

- the official EClient/EWrapper connects to the stand-in process and reads the managed
  accounts, the next order id and the positions;
- every message id the stand-in uses is ibapi's (``ibapi.message.IN`` / ``OUT``);
- requests are encoded by ibapi's EClient at server version 178 and answered by the
  stand-in; every answer is decoded by ibapi's Decoder, which must consume each message's
  fields exactly (one field too many or too few shifts every field after it);
- the handshake and the session are as strict as the real gateway's.
"""

from __future__ import annotations

import socket
import struct
import threading
from decimal import Decimal

import pytest
from ibapi import message
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.decoder import Decoder
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from brokers.sim import ibgateway as sim
from tests.brokers.conftest import EUR_ACCOUNT, USD_ACCOUNT

VERSION = sim.SERVER_VERSION


# --- message ids --------------------------------------------------------------------------
RENAMED = {"COMMISSION_REPORT": "COMMISSION_AND_FEES_REPORT"}  # ibapi 10.50's newer name


def test_incoming_message_ids_are_ibapis():
    ids = {k: v for k, v in vars(sim.In).items() if k.isupper()}
    assert ids  # not vacuous
    for name, value in ids.items():
        assert getattr(message.IN, RENAMED.get(name, name)) == value, name


def test_outgoing_message_ids_are_ibapis():
    ids = {k: v for k, v in vars(sim.Out).items() if k.isupper()}
    assert ids
    for name, value in ids.items():
        assert getattr(message.OUT, name) == value, name


# --- ibapi's encoder → the stand-in → ibapi's decoder ---------------------------------------
class Capture:
    """Stands in for ibapi's socket: keeps what EClient would send."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def isConnected(self) -> bool:  # noqa: N802 (ibapi's name)
        return True

    def sendMsg(self, msg: bytes) -> None:  # noqa: N802
        self.sent.append(msg)


def encoded(call) -> list[str]:
    """The fields of the one message ibapi's EClient sends for ``call(client)``."""
    client = EClient(EWrapper())
    client.conn = Capture()
    client.connState = EClient.CONNECTED
    client.serverVersion_ = VERSION
    client.clientId = 9
    call(client)
    (raw,) = client.conn.sent
    (length,) = struct.unpack(">I", raw[:4])
    assert length == len(raw) - 4
    fields = raw[4:].decode().split("\0")
    assert fields[-1] == ""
    return fields[:-1]


class FakeConnection(sim.Connection):
    """A stand-in client connection that keeps what the stand-in answers."""

    def __init__(self, client_id: int = 9) -> None:
        self.client_id = client_id
        self.summaries = set()
        self.positions_subscribed = False
        self.account_updates = ""
        self.closed = False
        self.answers: list[list[str]] = []

    def send(self, fields) -> None:
        raw = sim.frame(fields)
        self.answers.append(raw[4:].decode().split("\0")[:-1])

    def close(self) -> None:
        self.closed = True


class Recorder(EWrapper):
    """ibapi's EWrapper, recording each callback with its arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple]] = []

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if callable(attr) and not name.startswith("_") and name in vars(EWrapper):
            calls = super().__getattribute__("calls")

            def record(*args, **kwargs):
                calls.append((name, args))
            return record
        return attr


class Counted(list):
    """The fields of one message, counting how many ibapi's decoder reads."""

    read = 0

    def __iter__(self):
        for item in super().__iter__():
            self.read += 1
            yield item


def decode_all(answers: list[list[str]]) -> list[tuple[str, tuple]]:
    """Decode the stand-in's answers with ibapi's Decoder at server version 178; every
    message must be read to its last field."""
    recorder = Recorder()
    decoder = Decoder(recorder, VERSION)
    for fields in answers:
        body = Counted(f.encode() for f in fields[1:])
        before = len(recorder.calls)
        decoder.interpret(body, int(fields[0]))
        if decoder.msgId2handleInfo[int(fields[0])].wrapperMeth is not None:
            # decoded by the callback's signature: called only when the count matches
            assert len(recorder.calls) == before + 1, fields
        else:
            assert body.read == len(body), (fields[0], body.read, len(body), fields)
    return recorder.calls


@pytest.fixture
def gateway():
    accounts = [sim.parse_account(a) for a in sim.DEFAULT_ACCOUNTS]
    return sim.IbGatewaySim(accounts)


def ask(gateway: sim.IbGatewaySim, conn: FakeConnection, call) -> list[tuple[str, tuple]]:
    conn.answers.clear()
    gateway._dispatch(conn, encoded(call))
    return decode_all(conn.answers)


def names(calls) -> list[str]:
    return [name for name, _ in calls]


def goog() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = "GOOG", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


def market(action: str, quantity: int, account: str, ref: str) -> Order:
    order = Order()
    order.action, order.orderType, order.totalQuantity = action, "MKT", Decimal(quantity)
    order.account, order.orderRef = account, ref
    return order


def test_start_api_answers_managed_accounts_and_the_next_order_id(gateway):
    conn = FakeConnection()
    conn.client_id = None
    calls = ask(gateway, conn, lambda c: c.startApi())
    assert ("managedAccounts", (f"{USD_ACCOUNT},{EUR_ACCOUNT}",)) in calls
    assert ("nextValidId", (1,)) in calls


def test_a_market_order_answers_open_order_status_execution_and_commission(gateway):
    conn = FakeConnection()
    gateway.clients[9] = conn
    calls = ask(gateway, conn, lambda c: c.placeOrder(5, goog(),
                                                      market("SELL", 10, USD_ACCOUNT, "tag-1")))
    assert names(calls) == ["openOrder", "orderStatus", "execDetails", "openOrder",
                            "orderStatus", "commissionAndFeesReport"]
    order_id, contract, order, state = calls[3][1]
    assert (order_id, contract.conId, order.orderRef, order.account) == (
        5, 208813720, "tag-1", USD_ACCOUNT)
    assert (order.action, order.totalQuantity, state.status) == ("SELL", Decimal(10), "Filled")
    status = calls[4][1]
    assert (status[0], status[1], status[2], status[3]) == (5, "Filled", Decimal(10), Decimal(0))
    _, contract, execution = calls[2][1]
    # the first GOOG close in GOOG_D1.csv is 100.34: a sell fills at the bid, 100.33
    assert (execution.side, execution.shares, execution.price) == ("SLD", Decimal(10), 100.33)
    assert execution.orderRef == "tag-1"
    (report,) = calls[5][1]
    assert report.execId == execution.execId
    assert report.commissionAndFees == 1.0  # 10 × 0.005 USD is below the 1.00 minimum


def test_positions_portfolio_and_account_values_decode(gateway):
    conn = FakeConnection()
    gateway.clients[9] = conn
    gateway.trade(USD_ACCOUNT, "GOOG", "buy", "10")
    calls = ask(gateway, conn, lambda c: c.reqPositions())
    assert names(calls) == ["position", "positionEnd"]
    account, contract, position, avg_cost = calls[0][1]
    # bought at the ask 100.35 with 1.00 commission: avgCost = (1003.50 + 1.00) / 10
    assert (account, contract.conId, position, avg_cost) == (
        USD_ACCOUNT, 208813720, Decimal(10), 100.45)
    calls = ask(gateway, conn, lambda c: c.reqAccountUpdates(True, USD_ACCOUNT))
    portfolio = [args for name, args in calls if name == "updatePortfolio"]
    (_contract, position, price, _value, average, unrealized, _, name), = portfolio
    # marked at the mid 100.34: 10 × (100.34 − 100.45) = −1.10
    assert (position, price, average, unrealized, name) == (
        Decimal(10), 100.34, 100.45, -1.1, USD_ACCOUNT)
    values = {args[0]: args[1] for n, args in calls if n == "updateAccountValue"}
    assert values["NetLiquidation"] == "99998.9"  # 100,000 − 1.00 commission − 0.10 spread
    assert names(calls)[-1] == "accountDownloadEnd"


def test_account_summary_decodes_and_a_third_subscription_is_refused(gateway):
    conn = FakeConnection()
    for req_id in (1, 2):
        calls = ask(gateway, conn, lambda c, r=req_id: c.reqAccountSummary(
            r, "All", "NetLiquidation,MaintMarginReq"))
        assert ("accountSummary", (req_id, EUR_ACCOUNT, "NetLiquidation", "50000", "EUR")) \
            in calls
        assert calls[-1] == ("accountSummaryEnd", (req_id,))
    calls = ask(gateway, conn, lambda c: c.reqAccountSummary(3, "All", "NetLiquidation"))
    assert [(name, args[0], args[2]) for name, args in calls] == [("error", 3, 322)]
    ask(gateway, conn, lambda c: c.cancelAccountSummary(1))
    calls = ask(gateway, conn, lambda c: c.reqAccountSummary(4, "All", "NetLiquidation"))
    assert calls[-1] == ("accountSummaryEnd", (4,))


def test_executions_filter_by_account_and_carry_commission_reports(gateway):
    conn = FakeConnection()
    gateway.trade(USD_ACCOUNT, "GOOG", "sell", "10", order_ref="open")
    gateway.prices.step += 1
    gateway.trade(USD_ACCOUNT, "GOOG", "buy", "10", order_ref="close")
    gateway.trade(EUR_ACCOUNT, "EURUSD", "buy", "20000")
    flt = ExecutionFilter()
    flt.acctCode = USD_ACCOUNT
    calls = ask(gateway, conn, lambda c: c.reqExecutions(7, flt))
    assert names(calls) == ["execDetails", "commissionAndFeesReport"] * 2 + ["execDetailsEnd"]
    reports = [args[0] for name, args in calls if name == "commissionAndFeesReport"]
    assert reports[0].realizedPNL > 1e300  # an opening execution: UNSET (Double.MAX_VALUE)
    # short 10 at 100.33 less 1.00 commission (avgCost 100.23), bought back at the next
    # bar's ask 108.32 plus 1.00: 1002.30 − 1084.20 = −81.90
    assert reports[1].realizedPNL == -81.9


def test_contract_details_and_snapshot_quotes_decode(gateway):
    conn = FakeConnection()
    calls = ask(gateway, conn, lambda c: c.reqContractDetails(3, goog()))
    assert names(calls) == ["contractDetails", "contractDetailsEnd"]
    details = calls[0][1][1]
    assert (details.contract.conId, details.minTick, details.contract.primaryExchange) == (
        208813720, 0.01, "NASDAQ")
    pair = Contract()
    pair.symbol, pair.secType, pair.currency, pair.exchange = "EUR", "CASH", "USD", "IDEALPRO"
    calls = ask(gateway, conn, lambda c: c.reqMktData(4, pair, "", True, False, []))
    prices = {args[1]: args[2] for name, args in calls if name == "tickPrice"}
    # the first EURUSD H1 close is 1.07219 (the bid); the ask is one 0.00005 tick above
    assert prices == {1: 1.07219, 2: 1.07224}
    assert calls[-1] == ("tickSnapshotEnd", (4,))


def test_an_unknown_contract_is_error_200(gateway):
    conn = FakeConnection()
    gateway.clients[9] = conn
    nope = goog()
    nope.symbol = "NOPE"
    for call in (lambda c: c.reqContractDetails(3, nope),
                 lambda c: c.placeOrder(6, nope, market("BUY", 1, USD_ACCOUNT, ""))):
        calls = ask(gateway, conn, call)
        assert [(n, a[2]) for n, a in calls] == [("error", 200)]


@pytest.mark.parametrize(("account", "quantity"), [("DU0000000", 10), (USD_ACCOUNT, 10**6)])
def test_an_order_for_an_unmanaged_account_or_beyond_margin_is_rejected(gateway, account,
                                                                        quantity):
    conn = FakeConnection()
    gateway.clients[9] = conn
    calls = ask(gateway, conn, lambda c: c.placeOrder(8, goog(),
                                                      market("BUY", quantity, account, "")))
    assert [(n, a[0], a[2]) for n, a in calls] == [("error", 8, 201)]
    assert gateway.executions == []


def test_a_reused_order_id_is_a_duplicate(gateway):
    conn = FakeConnection()
    gateway.clients[9] = conn
    ask(gateway, conn, lambda c: c.placeOrder(8, goog(), market("BUY", 1, USD_ACCOUNT, "")))
    calls = ask(gateway, conn, lambda c: c.placeOrder(8, goog(),
                                                      market("BUY", 1, USD_ACCOUNT, "")))
    assert [(n, a[2]) for n, a in calls] == [("error", 103)]


# --- the real process, over a socket --------------------------------------------------------
class App(EWrapper, EClient):
    """The official client, as IB's own samples write it."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.accounts = ""
        self.next_id = 0
        self.positions: list[tuple[str, int, Decimal, float]] = []
        self.errors: list[int] = []
        self.ready = threading.Event()
        self.done = threading.Event()

    def managedAccounts(self, accountsList):  # noqa: N802, N803 (ibapi's names)
        self.accounts = accountsList

    def nextValidId(self, orderId):  # noqa: N802, N803
        self.next_id = orderId
        self.ready.set()

    def position(self, account, contract, position, avgCost):  # noqa: N803
        self.positions.append((account, contract.conId, position, avgCost))

    def positionEnd(self):  # noqa: N802
        self.done.set()

    def error(self, reqId, errorTime, errorCode, errorString,  # noqa: N803
              advancedOrderRejectJson=""):  # noqa: N803
        self.errors.append(errorCode)


def test_the_official_client_connects_and_reads_positions(ib_gateway):
    ib_gateway.admin("trade", account=EUR_ACCOUNT, symbol="GOOG", side="buy", quantity="5")
    ib_gateway.admin("trade", account=USD_ACCOUNT, symbol="EURUSD", side="sell",
                     quantity="20000")
    app = App()
    app.connect(ib_gateway.host, ib_gateway.port, clientId=21)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        assert app.ready.wait(10)
        assert app.serverVersion() == VERSION
        assert app.accounts == f"{USD_ACCOUNT},{EUR_ACCOUNT}"
        app.reqPositions()
        assert app.done.wait(10)
        found = {(a, c, q) for a, c, q, _ in app.positions}
        assert found == {(EUR_ACCOUNT, 208813720, Decimal(5)),
                         (USD_ACCOUNT, 12087792, Decimal(-20000))}
        assert 326 not in app.errors
    finally:
        app.disconnect()
        thread.join(10)


def _handshake(port: int, versions: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"API\0" + struct.pack(">I", len(versions)) + versions)
    return sock


def _read(sock: socket.socket) -> list[str] | None:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack(">I", header)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return body.decode().split("\0")[:-1]


def _start_api(sock: socket.socket, client_id: int) -> None:
    payload = f"71\x002\x00{client_id}\x00\x00".encode()
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def _until_closed(sock: socket.socket) -> list[list[str]]:
    messages = []
    while (fields := _read(sock)) is not None:
        messages.append(fields)
    return messages


def test_a_wrong_handshake_is_closed(ib_gateway):
    sock = socket.create_connection(("127.0.0.1", ib_gateway.port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert _until_closed(sock) == []
    sock = _handshake(ib_gateway.port, b"v100..150")  # a client too old for 178
    assert _until_closed(sock) == []


def test_the_handshake_answers_version_then_start_api(ib_gateway):
    sock = _handshake(ib_gateway.port, b"v100..226")
    version, when = _read(sock)
    assert int(version) == VERSION and when.endswith("UTC")
    _start_api(sock, 31)
    first = [_read(sock), _read(sock)]
    assert first[0] == ["15", "1", f"{USD_ACCOUNT},{EUR_ACCOUNT}"]
    assert first[1] == ["9", "1", "1"]
    # a second connection with the same clientId: error 326, then the socket closes
    other = _handshake(ib_gateway.port, b"v157..178")
    _read(other)
    _start_api(other, 31)
    messages = _until_closed(other)
    assert [m[3] for m in messages if m[0] == "4"] == ["326"]
    # an unknown message id: error 505, then the socket closes
    payload = b"999\x001\x00"
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    errors = [m[3] for m in _until_closed(sock) if m[0] == "4"]
    assert errors[-1] == "505"


def test_historical_bars_decode(gateway):
    conn = FakeConnection()
    pair = Contract()
    pair.symbol, pair.secType, pair.currency, pair.exchange = "EUR", "CASH", "USD", "IDEALPRO"
    gateway.prices.step = 2
    calls = ask(gateway, conn, lambda c: c.reqHistoricalData(
        6, pair, "", "7200 S", "1 hour", "MIDPOINT", 0, 2, False, []))
    bars = [args[1] for name, args in calls if name == "historicalData"]
    # EURUSD_H1.csv rows 1 and 2: 2017-04-19 10:00 (close 1.0726) and 11:00 UTC
    assert [(b.date, b.close) for b in bars] == [("1492596000", 1.0726),
                                                  ("1492599600", bars[1].close)]
    assert names(calls)[-1] == "historicalDataEnd"
    calls = ask(gateway, conn, lambda c: c.reqHistoricalData(
        7, goog(), "", "7200 S", "1 hour", "TRADES", 0, 2, False, []))
    assert [(n, a[0], a[2]) for n, a in calls] == [("error", 7, 162)]


def test_a_what_if_order_previews_margin_and_executes_nothing(gateway):
    conn = FakeConnection()
    gateway.clients[9] = conn
    order = market("BUY", 10, USD_ACCOUNT, "")
    order.whatIf = True
    calls = ask(gateway, conn, lambda c: c.placeOrder(11, goog(), order))
    assert names(calls) == ["openOrder"]
    _, _, decoded, state = calls[0][1]
    assert decoded.whatIf is True
    # 10 GOOG marked at 100.34, 25 % margin: 250.85 USD more
    assert (state.initMarginBefore, state.initMarginChange, state.initMarginAfter) == (
        "0", "250.85", "250.85")
    assert state.commissionAndFees == 1.0
    assert gateway.executions == [] and gateway.orders == {}


def test_a_malformed_request_is_error_320_and_the_session_ends(gateway):
    conn = FakeConnection()
    gateway.clients[9] = conn
    gateway._dispatch(conn, ["62", "1", "not-a-number", "All", "NetLiquidation"])
    assert [(f[0], f[3]) for f in conn.answers] == [("4", "320")]
    assert conn.closed and 9 not in gateway.clients
