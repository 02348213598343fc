"""close_position through the real bridge and the simulated terminal (MetaTrader 5:
order_send with ``position=``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers import mt5_api
from brokers.bridge.client import BridgeTerminal
from brokers.mt5 import Mt5Gateway
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "close-test-token-0123456789"


@pytest.fixture
def bridge():
    bridge = start_bridge(TOKEN)
    bridge.add_account(5001)
    yield bridge
    bridge.process.terminate()
    bridge.process.wait(timeout=10)


def gateway(bridge) -> Mt5Gateway:
    return Mt5Gateway(BridgeTerminal(bridge.url, TOKEN, timeout=5), login=5001,
                      password="pw-5001", server=SIM_SERVER, magic=20240101)


def test_close_sends_the_opposite_deal_and_the_position_goes(bridge):
    ticket = bridge.sim("sim_open", 5001, "EURUSD", "buy", "0.30", magic=20240101)
    result = gateway(bridge).close_position(ticket, None, "guard:test")
    assert result.done and result.retcode == mt5_api.TRADE_RETCODE_DONE
    assert result.volume == Decimal("0.3")
    bid, _ = bridge.sim("sim_quote", "EURUSD")
    assert result.price == Decimal(str(bid))  # a buy closes at the bid
    assert bridge.sim("sim_positions", 5001) == ()


def test_closing_a_closed_position_is_done_without_sending(bridge):
    ticket = bridge.sim("sim_open", 5001, "EURUSD", "sell", "0.10")
    bridge.sim("sim_close", 5001, ticket)
    result = gateway(bridge).close_position(ticket, None, "guard:test")
    assert result.done and result.retcode == mt5_api.TRADE_RETCODE_POSITION_CLOSED


def test_requote_is_retryable_and_changes_nothing(bridge):
    ticket = bridge.sim("sim_open", 5001, "EURUSD", "buy", "0.10")
    bridge.sim("sim_inject_fault", "requote", method="order_send")
    result = gateway(bridge).close_position(ticket, None, "guard:test")
    assert (result.done, result.retryable, result.ambiguous) == (False, True, False)
    assert len(bridge.sim("sim_positions", 5001)) == 1


def test_partial_close_leaves_the_rest_open(bridge):
    ticket = bridge.sim("sim_open", 5001, "EURUSD", "buy", "0.50")
    result = gateway(bridge).close_position(ticket, Decimal("0.20"), "guard:test")
    assert result.done
    (left,) = bridge.sim("sim_positions", 5001)
    assert Decimal(str(left.volume)) == Decimal("0.30")


def test_a_partial_fill_of_a_close_is_partial_never_failed(bridge):
    """The sim's partial_fill fault hits closes too: half of 0.30 is filled."""
    ticket = bridge.sim("sim_open", 5001, "EURUSD", "buy", "0.30", magic=20240101)
    bridge.sim("sim_inject_fault", "partial_fill", method="order_send", fraction=0.5)
    result = gateway(bridge).close_position(ticket, None, "guard:test")
    assert (result.done, result.partial, result.retryable, result.ambiguous) == (
        False, True, False, False)
    assert result.retcode == mt5_api.TRADE_RETCODE_DONE_PARTIAL
    assert result.volume == Decimal("0.15")
    bid, _ = bridge.sim("sim_quote", "EURUSD")
    assert result.price == Decimal(str(bid))
    assert result.deal is not None
    (left,) = bridge.sim("sim_positions", 5001)
    assert Decimal(str(left.volume)) == Decimal("0.15")


class ShortFill:
    """The simulated terminal, except that order_send's reply says DONE with ``volume``
    lots: what a server that fills less without saying DONE_PARTIAL answers."""

    def __init__(self, terminal, volume: float) -> None:
        self.terminal = terminal
        self.volume = volume

    def __getattr__(self, name):
        return getattr(self.terminal, name)

    def order_send(self, request, /):
        return self.terminal.order_send(request)._replace(volume=self.volume)


@pytest.mark.parametrize(("filled", "done", "partial"), [
    (0.10, False, True),  # DONE, but 0.10 of 0.30: the rest is open
    (0.30, True, False),  # DONE in full
])
def test_done_with_a_smaller_volume_is_partial(bridge, filled, done, partial):
    ticket = bridge.sim("sim_open", 5001, "EURUSD", "sell", "0.30")
    terminal = ShortFill(BridgeTerminal(bridge.url, TOKEN, timeout=5), filled)
    result = Mt5Gateway(terminal, login=5001, password="pw-5001", server=SIM_SERVER,
                        magic=20240101).close_position(ticket, None, "guard:test")
    assert result.retcode == mt5_api.TRADE_RETCODE_DONE
    assert (result.done, result.partial, result.volume) == (done, partial,
                                                            Decimal(str(filled)))
    assert result.price is not None and result.deal is not None
