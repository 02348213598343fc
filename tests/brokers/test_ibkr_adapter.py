"""The ibkr adapter: IB's figures mapped onto the gateway's dataclasses, IB's error codes
onto the gateway's errors, and realized P&L taken from IB (never recomputed).

The pure mappings are driven with hand-made ib_async objects (a real gateway is outside
this machine); the rest goes through the IB Gateway stand-in as a real process.
"""

from __future__ import annotations

import socket
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ib_async import Contract, Execution, Fill, PortfolioItem
from ib_async.objects import CommissionReport

from brokers import open_gateway
from brokers.errors import (
    BrokerAuthError,
    BrokerBadReply,
    BrokerTimeout,
    BrokerUnavailable,
    BrokerUnknownSymbol,
)
from brokers.gateway import BrokerGateway, Side
from brokers.ibkr import (
    IbkrGateway,
    RawReport,
    deal_from,
    error_for,
    exec_ticket,
    latest_corrections,
    opening_executions,
    position_from,
)
from tests.brokers.conftest import EUR_ACCOUNT, USD_ACCOUNT

GOOG = 208813720
WHEN = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
UNSET = "1.7976931348623157E308"


def seed_realized(exit_price: Decimal, average: Decimal, quantity: Decimal) -> Decimal:
    """The seed's formula, kept here only to show it wrong: (exit - average) * quantity."""
    return (exit_price - average) * quantity


def option(con_id: int = 5) -> Contract:
    return Contract(conId=con_id, symbol="GOOG", secType="OPT", multiplier="100",
                    currency="USD", exchange="SMART")


def fill(contract: Contract, *, side: str, shares: float, price: float, exec_id: str,
         client_id: int = 7, ref: str = "", when: datetime = WHEN) -> Fill:
    execution = Execution(execId=exec_id, time=when, acctNumber=USD_ACCOUNT, side=side,
                          shares=shares, price=price, permId=900, clientId=client_id,
                          orderRef=ref)
    return Fill(contract, execution, CommissionReport(), when)


def gateway_for(process, account: str = USD_ACCOUNT, timeout: float = 3) -> IbkrGateway:
    return IbkrGateway(host=process.host, port=process.port, client_id=7, account_id=account,
                       timeout_seconds=timeout)


# --- realized P&L comes from IB ------------------------------------------------------------
def test_realized_pnl_of_a_multiplied_contract_is_ibs_not_the_seeds():
    """One GOOG option (multiplier 100) bought at 1.50 with 0.65 commission: IB's avgCost
    is 1.50 × 100 + 0.65 = 150.65. Sold at 2.50 with 0.65 commission, IB reports
    realizedPNL = 2.50 × 100 − 0.65 − 150.65 = 98.70."""
    sale = fill(option(), side="SLD", shares=1.0, price=2.50, exec_id="0001.0001.01.01")
    deal = deal_from(sale, RawReport("0001.0001.01.01", "0.65", "USD", "98.7"),
                     rate=Decimal(1))
    assert deal.net_profit == Decimal("98.70")
    assert (deal.profit, deal.commission, deal.entry) == (Decimal("99.35"), Decimal("-0.65"),
                                                          "out")
    # the seed's formula on the same fill: with IB's avgCost as the average it says
    # (2.50 − 150.65) × 1 = −148.15; with the price per unit (1.5065) it says 0.9935
    assert seed_realized(Decimal("2.50"), Decimal("150.65"), Decimal(1)) == Decimal("-148.15")
    assert seed_realized(Decimal("2.50"), Decimal("1.5065"), Decimal(1)) == Decimal("0.9935")
    assert deal.net_profit not in (Decimal("-148.15"), Decimal("0.9935"))


def test_realized_pnl_of_a_short_is_ibs_not_the_seeds(ib_gateway):
    """Short 10 GOOG at the first close's bid, 100.34 − 0.01 = 100.33, with 1.00
    commission: IB's avgCost = (1003.30 − 1.00) ÷ 10 = 100.23. Bought back at the next
    close's ask, 108.31 + 0.01 = 108.32, with 1.00 commission: IB's realizedPNL =
    1002.30 − (1083.20 + 1.00) = −81.90 (GOOG_D1.csv: 2004-08-19 and 2004-08-20)."""
    ib_gateway.admin("trade", account=USD_ACCOUNT, symbol="GOOG", side="sell", quantity="10")
    gateway = gateway_for(ib_gateway)
    (short,) = gateway.positions()
    assert (short.side, short.volume, short.price_open) == (Side.SELL, Decimal(10),
                                                           Decimal("100.23"))
    ib_gateway.admin("advance", bars=1)
    closed = gateway.close_position(GOOG, None, "bo-close-9")
    assert closed.done and closed.price == Decimal("108.32")
    deals = gateway.deals(datetime.now(tz=UTC) - timedelta(hours=1))
    (out,) = [d for d in deals if d.entry == "out"]
    assert out.net_profit == Decimal("-81.90")
    assert out.comment == "bo-close-9" and out.side is Side.BUY
    # the seed: (exit − average) × quantity = (108.32 − 100.23) × 10 = +80.90, a gain
    seed = seed_realized(closed.price, short.price_open, short.volume)
    assert seed == Decimal("80.90")
    assert seed != out.net_profit


def test_an_opening_execution_realizes_nothing():
    buy = fill(option(), side="BOT", shares=2.0, price=1.50, exec_id="0002.01")
    deal = deal_from(buy, RawReport("0002.01", "1.30", "USD", UNSET), rate=Decimal(1))
    # the commission is in avgCost, so the closing realizedPNL counts it: the deal nets 0
    assert (deal.entry, deal.profit, deal.commission, deal.side) == (
        "in", Decimal("1.30"), Decimal("-1.30"), Side.BUY)
    assert deal.net_profit == Decimal(0)
    assert deal.position_id == 5 and deal.ticket == exec_ticket("0002.01")


def test_a_deal_in_another_currency_is_converted():
    sale = fill(option(), side="SLD", shares=1.0, price=2.50, exec_id="0003.01")
    # 98.70 USD at 0.9 EUR per USD = 88.83 EUR
    deal = deal_from(sale, RawReport("0003.01", "0.65", "USD", "98.7"), rate=Decimal("0.9"))
    assert deal.net_profit == Decimal("88.830")


@pytest.mark.parametrize(("change", "field"), [
    ({"side": "BUY"}, "side"),
    ({"shares": 0.0}, "shares"),
    ({"price": float("nan")}, "price"),
    ({"execId": ""}, "execId"),
])
def test_a_bad_execution_field_is_named(change, field):
    sale = fill(option(), side="SLD", shares=1.0, price=2.5, exec_id="0004.01")
    for key, value in change.items():
        setattr(sale.execution, key, value)
    with pytest.raises(BrokerBadReply) as info:
        deal_from(sale, RawReport("0004.01", "0.65", "USD", "1"), rate=Decimal(1))
    assert info.value.detail["field"] == field


@pytest.mark.parametrize(("report", "field"), [
    (RawReport("x", "abc", "USD", "1"), "commission"),
    (RawReport("x", "-1", "USD", "1"), "commission"),
    (RawReport("x", "1", "USD", "nan"), "realizedPNL"),
    (RawReport("x", "1", "USD", "twelve"), "realizedPNL"),
])
def test_a_bad_commission_report_is_named(report, field):
    sale = fill(option(), side="SLD", shares=1.0, price=2.5, exec_id="x")
    with pytest.raises(BrokerBadReply) as info:
        deal_from(sale, report, rate=Decimal(1))
    assert info.value.detail["field"] == field


# --- positions ------------------------------------------------------------------------------
def item(**change) -> PortfolioItem:
    """Short 2 GOOG options sold at 1.50 with 0.65 commission each: IB's avgCost is
    1.50 × 100 − 0.65 = 149.35; marked at 2.40: unrealized 2 × (149.35 − 240) = −181.30."""
    fields = dict(contract=option(), position=-2.0, marketPrice=2.40, marketValue=-480.0,
                  averageCost=149.35, unrealizedPNL=-181.30, realizedPNL=0.0,
                  account=USD_ACCOUNT)
    return PortfolioItem(**{**fields, **change})


def test_open_price_is_avg_cost_over_the_multiplier():
    position = position_from(item(), rate=Decimal(1), opened_at=WHEN, comment="bo:1")
    assert (position.ticket, position.side, position.volume) == (5, Side.SELL, Decimal(2))
    assert position.price_open == Decimal("1.4935")  # 149.35 ÷ 100
    assert position.price_current == Decimal("2.4")
    assert position.profit == Decimal("-181.30")
    assert (position.comment, position.opened_at, position.position_id) == ("bo:1", WHEN, 5)


@pytest.mark.parametrize(("change", "field"), [
    ({"marketPrice": float("nan")}, "marketPrice"),
    ({"marketPrice": 0.0}, "marketPrice"),
    ({"averageCost": -1.0}, "averageCost"),
    ({"unrealizedPNL": float("inf")}, "unrealizedPNL"),
    ({"position": 0.0}, "position"),
    ({"contract": Contract(conId=0, symbol="GOOG", secType="STK")}, "conId"),
    ({"contract": Contract(conId=9, symbol="GOOG", secType="OPT", multiplier="x")},
     "multiplier"),
])
def test_a_bad_portfolio_field_is_named(change, field):
    with pytest.raises(BrokerBadReply) as info:
        position_from(item(**change), rate=Decimal(1), opened_at=WHEN)
    assert info.value.detail["field"] == field


def test_the_execution_that_opened_the_position_held_now():
    goog = Contract(conId=GOOG, symbol="GOOG", secType="STK")
    fills = [fill(goog, side="BOT", shares=10, price=100, exec_id="a.01", ref="first",
                  when=WHEN),
             fill(goog, side="SLD", shares=10, price=101, exec_id="b.01", ref="flat",
                  when=WHEN + timedelta(minutes=1)),
             fill(goog, side="SLD", shares=5, price=102, exec_id="c.01", ref="short",
                  when=WHEN + timedelta(minutes=2)),
             fill(goog, side="SLD", shares=5, price=102, exec_id="d.01", ref="more",
                  when=WHEN + timedelta(minutes=3))]
    opened = opening_executions(fills, {GOOG: Decimal(-10)})
    assert opened[GOOG].execution.orderRef == "short"
    # a history that does not add up to the position held explains nothing
    assert opening_executions(fills, {GOOG: Decimal(-7)}) == {}


def test_a_correction_replaces_the_execution_it_corrects():
    goog = Contract(conId=GOOG, symbol="GOOG", secType="STK")
    first = fill(goog, side="BOT", shares=10, price=100, exec_id="0001f4e8.65.01.01")
    fixed = fill(goog, side="BOT", shares=10, price=99, exec_id="0001f4e8.65.01.02")
    assert latest_corrections([fixed, first]) == [fixed]
    assert latest_corrections([first, fixed]) == [fixed]


def test_deal_tickets_are_stable_positive_and_distinct():
    tickets = {exec_ticket(f"0000e0d5.{n:08x}.01.01") for n in range(1000)}
    assert len(tickets) == 1000
    assert all(0 < t < 2**63 for t in tickets)
    assert exec_ticket("0000e0d5.00000001.01.01") == exec_ticket("0000e0d5.00000001.01.01")


# --- IB error codes -------------------------------------------------------------------------
PACING_162 = "Historical Market Data Service error message:API historical data query " \
    "cancelled: pacing violation"
NO_DATA_162 = "Historical Market Data Service error message:HMDS query returned no data"


@pytest.mark.parametrize(("code", "message", "error"), [
    (200, "No security definition has been found for the request", BrokerUnknownSymbol),
    (100, "Max rate of messages per second has been exceeded", BrokerTimeout),
    (162, PACING_162, BrokerTimeout),
    (162, NO_DATA_162, BrokerUnavailable),
    (420, "Invalid Real-time Query: pacing violation", BrokerTimeout),
    (322, "Maximum number of account summary requests exceeded", BrokerTimeout),
])
def test_ib_error_codes_map_to_gateway_errors(code, message, error):
    assert type(error_for(code, message, "call")) is error


@pytest.mark.parametrize("code", [326, 502, 504, 1100, 1300, 2110])
def test_not_connected_codes_are_unavailable_not_timeouts(code):
    mapped = error_for(code, "x", "call")
    assert type(mapped) is BrokerUnavailable
    assert mapped.detail["ib_error"] == code


# --- through the stand-in -------------------------------------------------------------------
def test_open_gateway_builds_an_ibkr_gateway(ib_gateway):
    gateway = open_gateway(broker="ibkr", login=USD_ACCOUNT, password="", server="",
                           bridge_url="", bridge_token="", timeout_seconds=3,
                           host=ib_gateway.host, port=ib_gateway.port, client_id=12)
    assert isinstance(gateway, IbkrGateway) and isinstance(gateway, BrokerGateway)
    state = gateway.account_state()
    assert (state.currency, state.equity, state.balance, state.margin) == (
        "USD", Decimal("100000.00"), Decimal("100000.00"), Decimal("0.00"))
    assert state.margin_level is None and state.server == USD_ACCOUNT


def test_account_values_map_onto_the_account_state(ib_gateway):
    """Long 20,000 EUR.USD at the ask 1.07224 with 2.00 commission (IDEALPRO minimum),
    marked at the mid 1.072215: NetLiquidation = 100,000 − 2.00 − 20,000 × 0.000025 =
    99,997.50; cash = 100,000 − 21,444.80 − 2.00 = 78,553.20; maintenance margin 3 % of
    21,444.30 = 643.33; AvailableFunds = 99,997.50 − 643.33 = 99,354.17."""
    ib_gateway.admin("trade", account=USD_ACCOUNT, symbol="EURUSD", side="buy",
                     quantity="20000")
    state = gateway_for(ib_gateway).account_state()
    assert state.equity == Decimal("99997.50")
    assert state.balance == Decimal("78553.20")
    assert state.margin == Decimal("643.33")
    assert state.free_margin == Decimal("99354.17")
    assert state.profit == Decimal("-2.50")  # UnrealizedPnL: (1.072215 − 1.07234) × 20,000
    assert state.margin_level == Decimal("15543.73")  # 99,997.50 ÷ 643.33 × 100


def test_a_eur_account_reports_usd_profit_in_eur(ib_gateway):
    """5 GOOG bought at the ask 100.35 with 1.00 commission: avgCost 100.55; marked at
    100.34 the unrealized P&L is −1.05 USD; at the EUR.USD mid 1.072215 one USD is
    0.9326488 EUR (ExchangeRate), so −0.98 EUR."""
    ib_gateway.admin("trade", account=EUR_ACCOUNT, symbol="GOOG", side="buy", quantity="5")
    gateway = gateway_for(ib_gateway, EUR_ACCOUNT)
    assert gateway.account_state().currency == "EUR"
    (position,) = gateway.positions()
    assert (position.symbol, position.price_open, position.profit) == (
        "GOOG", Decimal("100.55"), Decimal("-0.98"))


def test_positions_carry_when_and_by_which_order_they_opened(ib_gateway):
    before = datetime.now(tz=UTC).replace(microsecond=0)
    ib_gateway.admin("trade", account=USD_ACCOUNT, symbol="GOOG", side="buy", quantity="3",
                     order_ref="bot:42")
    (position,) = gateway_for(ib_gateway).positions()
    assert position.comment == "bot:42"
    assert before <= position.opened_at <= datetime.now(tz=UTC)


def test_an_account_the_gateway_does_not_manage_is_refused(ib_gateway):
    with pytest.raises(BrokerAuthError) as info:
        gateway_for(ib_gateway, "U9999999").account_state()
    assert info.value.detail["managed"] == [USD_ACCOUNT, EUR_ACCOUNT]


def test_a_client_id_in_use_is_unavailable(ib_gateway):
    sock = socket.create_connection((ib_gateway.host, ib_gateway.port), timeout=5)
    sock.sendall(b"API\0" + struct.pack(">I", 9) + b"v157..178")
    sock.recv(1024)
    payload = b"71\x002\x007\x00\x00"
    sock.sendall(struct.pack(">I", len(payload)) + payload)  # clientId 7 is taken now
    ib_gateway.admin("state")  # the stand-in has processed startApi
    try:
        with pytest.raises(BrokerUnavailable) as info:
            gateway_for(ib_gateway, timeout=2).account_state()
        assert 326 in info.value.detail["ib_errors"]
    finally:
        sock.close()


def test_a_gateway_that_is_not_there_is_unavailable():
    gateway = IbkrGateway(host="127.0.0.1", port=_closed_port(), client_id=7,
                          account_id=USD_ACCOUNT, timeout_seconds=2)
    with pytest.raises(BrokerUnavailable):
        gateway.positions()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_read_with_no_answer_is_a_timeout(ib_gateway):
    gateway = gateway_for(ib_gateway, timeout=1)
    gateway.account_state()
    ib_gateway.fault("silence", request="reqAccountSummary")
    with pytest.raises(BrokerTimeout):
        gateway.account_state()
    assert gateway.account_state().equity == Decimal("100000.00")


def test_quotes_and_symbol_rules(ib_gateway):
    gateway = gateway_for(ib_gateway)
    quote = gateway.quote("EURUSD")
    assert (quote.bid, quote.ask) == (Decimal("1.07219"), Decimal("1.07224"))
    spec = gateway.symbol_spec("EURUSD")
    assert (spec.tick_size, spec.contract_size, spec.tick_value, spec.calc_mode) == (
        Decimal("0.00005"), Decimal(1), Decimal("0.00005"), "forex")
    assert (spec.currency_base, spec.currency_profit) == ("EUR", "USD")
    with pytest.raises(BrokerUnknownSymbol):
        gateway.quote("NOPE")


def test_deals_are_limited_to_the_window_and_the_account(ib_gateway):
    ib_gateway.admin("trade", account=USD_ACCOUNT, symbol="GOOG", side="buy", quantity="2")
    ib_gateway.admin("trade", account=EUR_ACCOUNT, symbol="GOOG", side="buy", quantity="2")
    gateway = gateway_for(ib_gateway)
    now = datetime.now(tz=UTC)
    (deal,) = gateway.deals(now - timedelta(minutes=5))
    assert (deal.symbol, deal.volume, deal.entry) == ("GOOG", Decimal(2), "in")
    assert gateway.deals(now + timedelta(minutes=5)) == []
    assert gateway.deals(now - timedelta(minutes=5), now - timedelta(minutes=4)) == []


def test_stops_are_not_sent_silently(ib_gateway):
    result = gateway_for(ib_gateway).open_position("GOOG", Side.BUY, Decimal(1),
                                                   sl=Decimal(90), tp=None, tag="bot:1")
    assert not result.done and "stops" in result.comment
    assert ib_gateway.admin("state")["executions"] == []


def test_open_position_places_a_tagged_market_order(ib_gateway):
    result = gateway_for(ib_gateway).open_position("GOOG", Side.BUY, Decimal(4), sl=None,
                                                   tp=None, tag="bot:7")
    assert result.done and result.ticket == GOOG and result.volume == Decimal(4)
    (execution,) = ib_gateway.admin("state")["executions"]
    assert (execution["order_ref"], execution["side"]) == ("bot:7", "BOT")


def test_recent_bars_are_the_last_hours_oldest_first(ib_gateway):
    ib_gateway.admin("advance", bars=3)
    bars = gateway_for(ib_gateway).recent_bars("EURUSD", 2)
    # EURUSD_H1.csv rows 2 and 3 (the one in progress): 2017-04-19 11:00 and 12:00 UTC
    assert [b.time for b in bars] == [datetime(2017, 4, 19, 11, tzinfo=UTC),
                                      datetime(2017, 4, 19, 12, tzinfo=UTC)]
    assert all(b.open > 0 and b.close > 0 for b in bars)


def test_no_hourly_data_is_unknown_not_a_timeout(ib_gateway):
    with pytest.raises(BrokerUnavailable) as info:
        gateway_for(ib_gateway).recent_bars("GOOG", 2)  # the stand-in has daily GOOG only
    assert not isinstance(info.value, BrokerTimeout)
    assert info.value.detail["ib_error"] == 162


def test_margin_required_is_ibs_what_if_initial_margin_change(ib_gateway):
    gateway = gateway_for(ib_gateway)
    # 10 GOOG at the mid 100.34, 25 %: 250.85; 20,000 EUR.USD at 1.072215, 3 %: 643.33
    assert gateway.margin_required("GOOG", Side.BUY, Decimal(10), Decimal(0)) == \
        Decimal("250.85")
    assert gateway.margin_required("EURUSD", Side.SELL, Decimal(20000), Decimal(0)) == \
        Decimal("643.33")
    ib_gateway.admin("trade", account=USD_ACCOUNT, symbol="GOOG", side="buy", quantity="10")
    # selling what is held releases margin: nothing is required
    assert gateway.margin_required("GOOG", Side.SELL, Decimal(4), Decimal(0)) == Decimal(0)
    assert len(ib_gateway.admin("state")["executions"]) == 1  # previews execute nothing


def _read_equity_in_child(gateway: IbkrGateway, results) -> None:
    try:
        results.put(str(gateway.account_state().equity))
    except Exception as exc:  # noqa: BLE001 (reported to the parent, which asserts)
        results.put(f"{type(exc).__name__}: {exc}")


def test_a_gateway_inherited_through_a_fork_uses_the_childs_own_loop(ib_gateway):
    """A prefork Celery worker forks after the parent may have used a gateway: threads do
    not survive a fork, so the child must start its own loop and connection."""
    import multiprocessing

    from brokers.ibkr import close_sessions

    gateway = gateway_for(ib_gateway)
    assert gateway.account_state().equity == Decimal("100000.00")  # the parent's loop runs
    close_sessions()  # the parent lets its clientId go, as a worker's parent would not use it
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_read_equity_in_child, args=(gateway, results))
    child.start()
    try:
        assert results.get(timeout=20) == "100000.00"
    finally:
        child.join(10)


def test_calls_from_many_threads_share_one_connection(ib_gateway):
    """Celery threads call the port at once: one connection per clientId, calls in turn,
    each answered for its own account."""
    from concurrent.futures import ThreadPoolExecutor

    ib_gateway.admin("trade", account=EUR_ACCOUNT, symbol="GOOG", side="buy", quantity="5")
    usd, eur = gateway_for(ib_gateway), gateway_for(ib_gateway, EUR_ACCOUNT)

    def read(gateway: IbkrGateway) -> tuple[str, int]:
        return gateway.account_state().currency, len(gateway.positions())

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, [usd, eur] * 8))
    assert results == [("USD", 0), ("EUR", 1)] * 8
    assert ib_gateway.admin("state")["clients"] == [7]


def test_the_stand_in_starts_with_trades_and_a_moving_clock():
    """What the demo runs: positions made at start, prices moving on their own."""
    from brokers.ibkr import close_sessions
    from tests.brokers.conftest import start_ib_gateway

    process = start_ib_gateway("--trade", f"{USD_ACCOUNT}:GOOG:buy:100:demo",
                               "--trade", f"{USD_ACCOUNT}:EURUSD:sell:25000",
                               "--bar-seconds", "0.05")
    try:
        gateway = gateway_for(process)
        held = {p.symbol: (p.side, p.volume) for p in gateway.positions()}
        assert held == {"GOOG": (Side.BUY, Decimal(100)), "EURUSD": (Side.SELL, Decimal(25000))}
        first = process.admin("state")["step"]
        while process.admin("state")["step"] == first:
            pass  # the replay moves on by itself; pytest-timeout bounds this
        assert process.admin("state")["step"] > first
    finally:
        close_sessions()
        process.stop()
