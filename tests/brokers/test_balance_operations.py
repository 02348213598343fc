"""Balance operations: the simulator books deposits, withdrawals, credit, charges,
corrections and bonuses as MetaTrader 5 does (a deal of its ENUM_DEAL_TYPE, entry IN,
position_id 0, profit = amount), and the adapter reads each deal's kind.

Figures: a USD account of 10,000 at 1:100, EURUSD bid 1.07160 / ask 1.07172 at bar #0
(brokers/sim/EURUSD_H1.csv). One lot bought at the ask needs 1 lot × 100,000 EUR / 100 ×
1.07160 = 1,071.60 USD of margin and is worth (1.07160 − 1.07172) × 100,000 = −12.00 USD.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from brokers import mt5_api as mt5
from brokers.bridge.client import BridgeTerminal
from brokers.gateway import DealKind
from brokers.mt5 import Mt5Gateway
from brokers.sim import ReplayClock, SimAccount, SimTerminal, load_bars
from tests.conftest import SIM_SERVER, start_bridge

D = Decimal
TOKEN = "balance-ops-token-0123456789"
BARS = load_bars()
EVERYTHING = (0, 2**31 - 1)


def sim() -> Any:
    term = SimTerminal(bars=BARS, clock=ReplayClock(3600, manual=True), accounts=[SimAccount(
        login=2001, password="pw-2001", investor_password="view-2001", server=SIM_SERVER,
        currency="USD", leverage=100, balance=D(10000), name="Cash")])
    assert term.initialize()
    assert term.login(2001, password="pw-2001", server=SIM_SERVER)
    return term


@pytest.mark.parametrize(("kind", "amount", "deal_type"), [
    ("balance", "500", mt5.DEAL_TYPE_BALANCE),  # a deposit
    ("balance", "-300", mt5.DEAL_TYPE_BALANCE),  # a withdrawal
    ("charge", "-25.50", mt5.DEAL_TYPE_CHARGE),
    ("correction", "12.34", mt5.DEAL_TYPE_CORRECTION),
    ("bonus", "100", mt5.DEAL_TYPE_BONUS),
])
def test_balance_kinds_move_the_balance_and_book_a_deal(kind, amount, deal_type):
    term = sim()
    ticket = term.sim_balance_operation(2001, amount, f"{kind} by test", kind=kind)
    info = term.account_info()
    assert (info.balance, info.credit) == (10000 + float(amount), 0.0)
    assert info.equity == info.balance
    deal = term.history_deals_get(*EVERYTHING)[-1]
    assert (deal.ticket, deal.type, deal.entry, deal.position_id, deal.order) == (
        ticket, deal_type, mt5.DEAL_ENTRY_IN, 0, 0)
    assert (deal.profit, deal.symbol, deal.volume, deal.comment) == (
        float(amount), "", 0.0, f"{kind} by test")


def test_credit_moves_credit_and_equity_counts_it_with_the_floating_profit():
    term = sim()
    term.sim_open(2001, "EURUSD", "buy", "1.00")
    term.sim_balance_operation(2001, "1000", "credit line", kind="credit")
    info = term.account_info()
    assert (info.balance, info.credit, info.profit) == (10000.0, 1000.0, -12.0)
    assert info.equity == 10000.0 + 1000.0 - 12.0  # balance + credit + floating profit
    assert info.margin_free == pytest.approx(10988.0 - 1071.60)
    assert term.history_deals_get(*EVERYTHING)[-1].type == mt5.DEAL_TYPE_CREDIT
    term.sim_balance_operation(2001, "-400", "credit back", kind="credit")
    assert term.account_info().credit == 600.0
    with pytest.raises(ValueError, match="credit"):
        term.sim_balance_operation(2001, "-601", "too much", kind="credit")


def test_a_withdrawal_above_the_free_margin_is_refused_and_changes_nothing():
    term = sim()
    term.sim_open(2001, "EURUSD", "buy", "1.00")
    # free margin: 10,000 − 12.00 − 1,071.60 = 8,916.40
    before = term.history_deals_get(*EVERYTHING)
    with pytest.raises(ValueError, match="free margin"):
        term.sim_balance_operation(2001, "-8916.41", "too much")
    assert term.account_info().balance == 10000.0
    assert term.history_deals_get(*EVERYTHING) == before
    term.sim_balance_operation(2001, "-8916.40", "all of it")
    assert term.account_info().margin_free == pytest.approx(0.0)


@pytest.mark.parametrize(("amount", "kind", "message"), [
    ("0", "balance", "non-zero"),
    ("10", "dividend", "kind"),
])
def test_bad_operations_are_refused(amount, kind, message):
    with pytest.raises(ValueError, match=message):
        sim().sim_balance_operation(2001, amount, "x", kind=kind)


def test_balance_operations_through_the_bridge_have_their_kind():
    bridge = start_bridge(TOKEN)
    try:
        bridge.add_account(2101)
        for amount, kind in (("500", "balance"), ("-200", "balance"), ("1000", "credit"),
                             ("-7.5", "charge"), ("3", "correction"), ("50", "bonus")):
            assert bridge.sim("sim_balance_operation", 2101, amount, f"{kind} {amount}",
                              kind=kind) > 0
        ticket = bridge.sim("sim_open", 2101, "EURUSD", "buy", "0.10")
        bridge.sim("sim_close", 2101, ticket)
        gateway = Mt5Gateway(BridgeTerminal(bridge.url, TOKEN, timeout=5), login=2101,
                             password="pw-2101", server=SIM_SERVER)
        deals = gateway.deals(since=datetime(2017, 4, 19, tzinfo=UTC))
        assert [(d.kind, d.cash_flow) for d in deals] == [
            (DealKind.BALANCE, D("10000")),  # the initial deposit
            (DealKind.BALANCE, D("500")), (DealKind.BALANCE, D("-200")),
            (DealKind.CREDIT, D("1000")), (DealKind.CHARGE, D("-7.5")),
            (DealKind.CORRECTION, D("3")), (DealKind.BONUS, D("50")),
            (DealKind.TRADE, D(0)), (DealKind.TRADE, D(0)),
        ]
        state = gateway.account_state()
        assert (state.balance, state.credit) == (D("10345.50") - D("1.20"), D("1000.00"))
    finally:
        bridge.process.terminate()
        bridge.process.wait(timeout=10)


DEAL = dict(ticket=9, order=0, time=1492592400, time_msc=1492592400000, type=0, entry=0,
            magic=0, position_id=0, reason=0, volume=0.0, price=0.0, commission=0.0, swap=0.0,
            profit=10.0, fee=0.0, symbol="", comment="", external_id="")


class DealsTerminal:
    """Answers history_deals_get with one deal of each type. Stands in for a terminal."""

    def __init__(self, types: list[int]) -> None:
        self.deals = tuple(mt5.TradeDeal(**{**DEAL, "ticket": 9 + i, "type": t})
                           for i, t in enumerate(types))

    def login(self, login: int, /, password: str = "", server: str = "",
              timeout: int | None = None) -> bool:
        return True

    def last_error(self) -> tuple[int, str]:
        return (mt5.RES_S_OK, "Success")

    def history_deals_get(self, date_from: int, date_to: int, /) -> tuple:
        return self.deals


# ENUM_DEAL_TYPE (MetaTrader 5 docs; wheel 5.0.6231 __init__.py for 0..14)
KINDS = [
    (0, DealKind.TRADE), (1, DealKind.TRADE), (2, DealKind.BALANCE), (3, DealKind.CREDIT),
    (4, DealKind.CHARGE), (5, DealKind.CORRECTION), (6, DealKind.BONUS),
    (7, DealKind.COMMISSION), (8, DealKind.COMMISSION), (9, DealKind.COMMISSION),
    (10, DealKind.COMMISSION), (11, DealKind.COMMISSION), (12, DealKind.INTEREST),
    (13, DealKind.CANCELED), (14, DealKind.CANCELED), (15, DealKind.DIVIDEND),
    (16, DealKind.DIVIDEND), (17, DealKind.TAX), (99, DealKind.OTHER),
]


def test_every_deal_type_has_its_kind():
    terminal = DealsTerminal([t for t, _ in KINDS])
    gateway = Mt5Gateway(terminal, login=1, password="", server="s")
    deals = gateway.deals(since=datetime(2017, 4, 19, tzinfo=UTC))
    assert [d.kind for d in deals] == [k for _, k in KINDS]
    assert [d.cash_flow for d in deals] == [D(0) if k in (
        DealKind.TRADE, DealKind.CANCELED, DealKind.OTHER) else D("10.0") for _, k in KINDS]


def test_the_constants_match_the_enum():
    assert [mt5.DEAL_TYPE_CREDIT, mt5.DEAL_TYPE_CHARGE, mt5.DEAL_TYPE_CORRECTION,
            mt5.DEAL_TYPE_BONUS, mt5.DEAL_TYPE_COMMISSION, mt5.DEAL_TYPE_COMMISSION_DAILY,
            mt5.DEAL_TYPE_COMMISSION_MONTHLY, mt5.DEAL_TYPE_COMMISSION_AGENT_DAILY,
            mt5.DEAL_TYPE_COMMISSION_AGENT_MONTHLY, mt5.DEAL_TYPE_INTEREST,
            mt5.DEAL_TYPE_BUY_CANCELED, mt5.DEAL_TYPE_SELL_CANCELED, mt5.DEAL_TYPE_DIVIDEND,
            mt5.DEAL_TYPE_DIVIDEND_FRANKED, mt5.DEAL_TYPE_TAX] == list(range(3, 18))
    assert (mt5.DEAL_DIVIDEND, mt5.DEAL_DIVIDEND_FRANKED, mt5.DEAL_TAX) == (15, 16, 17)

