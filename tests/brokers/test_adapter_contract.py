"""One contract, two adapters: the same cases against MetaTrader 5 (the simulated terminal
behind a real bridge process) and Interactive Brokers (the IB Gateway stand-in as a real
process, through ib_async).

Each harness opens a position the way a person would (outside the gateway), breaks the
next read or order its own broker's way, and counts what the broker really executed:

- unknown ≠ flat: a failed read raises, it never answers [];
- field validation: a bad value is BrokerBadReply naming the field in the broker's words;
- error classes: disconnected → BrokerUnavailable, timeout / pacing → BrokerTimeout,
  an unknown symbol → BrokerUnknownSymbol, a rejected close is neither done, retryable nor
  ambiguous;
- idempotent close: a close whose answer is lost, sent again with the same tag, closes
  the position once.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from brokers.bridge.client import BridgeTerminal
from brokers.errors import BrokerBadReply, BrokerTimeout, BrokerUnavailable, BrokerUnknownSymbol
from brokers.ibkr import IbkrGateway
from brokers.mt5 import Mt5Gateway
from tests.brokers.conftest import USD_ACCOUNT, start_ib_gateway
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "contract-test-token-0123456789"
MT5_LOGIN = 5301
EURUSD_CONID = 12087792


class CorruptingTerminal:
    """The bridge client, except that the next positions_get rows carry ``override``: the
    replies a broken terminal would give, which the simulated one never does."""

    def __init__(self, terminal: BridgeTerminal) -> None:
        self.terminal = terminal
        self.override: dict[str, object] = {}

    def __getattr__(self, name):
        return getattr(self.terminal, name)

    def positions_get(self, **kwargs):
        rows = self.terminal.positions_get(**kwargs)
        if self.override and rows:
            rows, self.override = tuple(r._replace(**self.override) for r in rows), {}
        return rows


class Mt5Harness:
    name = "mt5"
    unknown_symbol = "NOPE"
    # generic case -> (the sim's fault, the error expected)
    read_faults = {"disconnect": ("disconnect", BrokerUnavailable),
                   "timeout": ("timeout", BrokerTimeout),
                   "lost": ("none", BrokerUnavailable)}
    corruptions = {"price_nan": ({"price_current": math.nan}, "price_current"),
                   "volume_bad": ({"volume": -1.0}, "volume"),
                   "profit_inf": ({"profit": math.inf}, "profit")}

    def __init__(self) -> None:
        self.bridge = start_bridge(TOKEN)
        self.bridge.add_account(MT5_LOGIN)
        self.terminal = CorruptingTerminal(BridgeTerminal(self.bridge.url, TOKEN, timeout=5))

    def gateway(self) -> Mt5Gateway:
        return Mt5Gateway(self.terminal, login=MT5_LOGIN, password=f"pw-{MT5_LOGIN}",
                          server=SIM_SERVER, magic=20240101)

    def open(self) -> int:
        return self.bridge.sim("sim_open", MT5_LOGIN, "EURUSD", "buy", "0.10")

    def fail_next_read(self, case: str) -> type[Exception]:
        kind, error = self.read_faults[case]
        self.bridge.sim("sim_inject_fault", kind, method="positions_get", delay=0.0)
        return error

    def corrupt_next_read(self, case: str) -> str:
        override, field = self.corruptions[case]
        self.terminal.override = override
        return field

    def reject_next_order(self) -> None:
        self.bridge.sim("sim_inject_fault", "reject", method="order_send")

    def lose_next_close(self) -> None:
        self.bridge.sim("sim_inject_fault", "lost_reply", method="order_send")

    def settle(self) -> None:
        """Nothing: a lost reply's order was executed at once."""

    def closing_executions(self, tag: str) -> int:
        return sum(1 for d in self.bridge.admin_deals(MT5_LOGIN)
                   if d.comment == tag and d.entry == 1)  # DEAL_ENTRY_OUT

    def stop(self) -> None:
        self.bridge.process.terminate()
        self.bridge.process.wait(timeout=10)


class IbkrHarness:
    name = "ibkr"
    unknown_symbol = "NOPE"
    read_faults = {"disconnect": ("disconnect", BrokerUnavailable),
                   "timeout": ("pacing", BrokerTimeout),
                   "lost": ("not_connected", BrokerUnavailable)}
    corruptions = {"price_nan": (("updatePortfolio", "marketPrice", "nan"), "marketPrice"),
                   "volume_bad": (("position", "position", "nan"), "position"),
                   "profit_inf": (("updatePortfolio", "unrealizedPNL", "inf"), "unrealizedPNL")}

    def __init__(self) -> None:
        self.process = start_ib_gateway()

    def gateway(self) -> IbkrGateway:
        return IbkrGateway(host=self.process.host, port=self.process.port, client_id=7,
                           account_id=USD_ACCOUNT, timeout_seconds=2)

    def open(self) -> int:
        self.process.admin("trade", account=USD_ACCOUNT, symbol="EURUSD", side="buy",
                           quantity="20000")
        return EURUSD_CONID

    def fail_next_read(self, case: str) -> type[Exception]:
        kind, error = self.read_faults[case]
        self.process.fault(kind, request="reqPositions")
        return error

    def corrupt_next_read(self, case: str) -> str:
        (target, field, value), expected = self.corruptions[case]
        self.process.fault("corrupt", target=target, field=field, value=value)
        return expected

    def reject_next_order(self) -> None:
        self.process.fault("reject", message="Rejected by a risk check")

    def lose_next_close(self) -> None:
        self.process.fault("hold")  # accepted, never filled until released

    def settle(self) -> None:
        self.process.admin("release")

    def closing_executions(self, tag: str) -> int:
        return sum(1 for e in self.process.admin("state")["executions"]
                   if e["order_ref"] == tag)

    def stop(self) -> None:
        from brokers.ibkr import close_sessions

        close_sessions()
        self.process.stop()


@pytest.fixture(params=[Mt5Harness, IbkrHarness], ids=lambda h: h.name)
def harness(request):
    harness = request.param()
    yield harness
    harness.stop()


def test_an_empty_account_is_flat(harness):
    assert harness.gateway().positions() == []


@pytest.mark.parametrize("case", ["disconnect", "timeout", "lost"])
def test_a_failed_read_is_unknown_never_flat(harness, case):
    gateway = harness.gateway()
    ticket = harness.open()
    assert [p.ticket for p in gateway.positions()] == [ticket]  # connected, a good read
    error = harness.fail_next_read(case)
    with pytest.raises(BrokerUnavailable) as info:
        gateway.positions()
    assert type(info.value) is error  # not only a subclass: a timeout is not a disconnect
    # the next read, without a fault, lists the position again
    assert [p.ticket for p in gateway.positions()] == [ticket]


@pytest.mark.parametrize("case", ["price_nan", "volume_bad", "profit_inf"])
def test_a_bad_field_is_named(harness, case):
    gateway = harness.gateway()
    harness.open()
    assert len(gateway.positions()) == 1  # connected, a good read
    field = harness.corrupt_next_read(case)
    with pytest.raises(BrokerBadReply) as info:
        gateway.positions()
    assert info.value.detail["field"] == field


def test_an_unknown_symbol_is_its_own_error(harness):
    with pytest.raises(BrokerUnknownSymbol):
        harness.gateway().symbol_spec(harness.unknown_symbol)


def test_a_rejected_close_is_neither_done_retryable_nor_ambiguous(harness):
    gateway = harness.gateway()
    ticket = harness.open()
    harness.reject_next_order()
    result = gateway.close_position(ticket, None, "bo-close-rej")
    assert (result.done, result.retryable, result.ambiguous, result.partial) == (
        False, False, False, False)
    assert [p.ticket for p in gateway.positions()] == [ticket]
    assert harness.closing_executions("bo-close-rej") == 0


def test_a_close_then_its_repeat_close_once(harness):
    gateway = harness.gateway()
    ticket = harness.open()
    first = gateway.close_position(ticket, None, "bo-close-1")
    assert first.done and first.price is not None and first.price > 0
    again = gateway.close_position(ticket, None, "bo-close-1")
    assert again.done and again.volume is None  # nothing was sent
    assert gateway.positions() == []
    assert harness.closing_executions("bo-close-1") == 1


def test_a_close_whose_answer_is_lost_is_executed_once(harness):
    gateway = harness.gateway()
    ticket = harness.open()
    harness.lose_next_close()
    first = gateway.close_position(ticket, None, "bo-close-7")
    assert first.ambiguous and not first.done
    # the CloseRequest path sends again with the same tag: never a second close
    second = gateway.close_position(ticket, None, "bo-close-7")
    assert second.done or second.ambiguous
    harness.settle()
    third = gateway.close_position(ticket, None, "bo-close-7")
    assert third.done
    assert gateway.positions() == []
    assert harness.closing_executions("bo-close-7") == 1


def test_partial_close_leaves_the_rest(harness):
    gateway = harness.gateway()
    ticket = harness.open()
    (held,) = gateway.positions()
    result = gateway.close_position(ticket, held.volume / 2, "bo-close-half")
    assert result.done or result.partial
    (left,) = gateway.positions()
    assert left.volume == held.volume / 2
    assert left.volume > Decimal(0)
