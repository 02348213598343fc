"""The position identifier: MetaTrader 5's TradePosition.identifier is the opening order's
ticket, for good; the position's deals carry it as position_id. A server that re-opens
positions on swap gives them a new ticket but keeps the identifier (sim_reticket)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from brokers.bridge.client import BridgeTerminal
from brokers.errors import BridgeRefused
from brokers.mt5 import Mt5Gateway
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "identifier-test-token-0123456789"
SINCE = datetime(2017, 4, 19, tzinfo=UTC)


@pytest.fixture
def bridge():
    bridge = start_bridge(TOKEN)
    bridge.add_account(8001)
    yield bridge
    bridge.process.terminate()
    bridge.process.wait(timeout=10)


def gateway(bridge) -> Mt5Gateway:
    return Mt5Gateway(BridgeTerminal(bridge.url, TOKEN, timeout=5), login=8001,
                      password="pw-8001", server=SIM_SERVER, magic=7)


def test_a_new_position_is_identified_by_its_opening_order(bridge):
    ticket = bridge.sim("sim_open", 8001, "EURUSD", "buy", "0.10", magic=7)
    (position,) = gateway(bridge).positions()
    assert (position.ticket, position.identifier, position.position_id) == (
        ticket, ticket, ticket)
    (deal_in,) = [d for d in gateway(bridge).deals(SINCE) if d.entry == "in" and d.symbol]
    assert (deal_in.order, deal_in.position_id) == (ticket, ticket)


def test_a_reticketed_position_keeps_its_identifier_and_its_deals(bridge):
    opened = bridge.sim("sim_open", 8001, "EURUSD", "sell", "0.20", magic=7)
    new_ticket = bridge.sim("sim_reticket", 8001, opened)
    assert new_ticket != opened
    gw = gateway(bridge)
    (position,) = gw.positions()
    assert (position.ticket, position.identifier, position.position_id) == (
        new_ticket, opened, opened)
    result = gw.close_position(new_ticket, None, "guard:test")  # closed by its new ticket
    assert result.done
    trades = [d for d in gw.deals(SINCE) if d.symbol]
    assert [(d.entry, d.position_id) for d in trades] == [("in", opened), ("out", opened)]
    assert gw.positions() == []


def test_reticketing_an_unknown_position_is_refused(bridge):
    with pytest.raises(BridgeRefused):  # the sim raised ValueError: the bridge answers 500
        bridge.sim("sim_reticket", 8001, 424242)
