"""Trade server time: a simulated GMT+2 server reports wall-clock epochs 2 hours ahead of
UTC, and the mt5 adapter with server_timezone="Etc/GMT-2" turns them back into UTC.

T is bar #0 of brokers/sim/EURUSD_H1.csv, 2017-04-19 09:00 UTC (epoch 1492592400); the
server's wall clock then reads 11:00 (epoch 1492599600)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from brokers import mt5_api as mt5
from brokers.bridge.client import BridgeTerminal
from brokers.mt5 import DEAL_WINDOW_MARGIN, Mt5Gateway
from brokers.sim import ReplayClock, SimAccount, SimTerminal, load_bars
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "server-time-token-0123456789"
T = datetime(2017, 4, 19, 9, tzinfo=UTC)
T_UTC_EPOCH = 1492592400
T_SERVER_EPOCH = T_UTC_EPOCH + 7200
BARS = load_bars()


def sim(offset: float = 2.0) -> Any:
    term = SimTerminal(bars=BARS, clock=ReplayClock(3600, manual=True),
                       server_utc_offset_hours=offset, accounts=[SimAccount(
                           login=3001, password="pw-3001", investor_password="view-3001",
                           server=SIM_SERVER, currency="USD", leverage=100,
                           balance=Decimal(10000), name="GMT+2")])
    assert term.initialize()
    assert term.login(3001, password="pw-3001", server=SIM_SERVER)
    return term


def test_the_simulator_reports_server_wall_clock_times():
    term = sim()
    ticket = term.sim_open(3001, "EURUSD", "buy", "0.10")
    (position,) = term.positions_get()
    assert (position.time, position.time_update) == (T_SERVER_EPOCH, T_SERVER_EPOCH)
    assert (position.time_msc, position.identifier) == (T_SERVER_EPOCH * 1000, ticket)
    assert term.symbol_info_tick("EURUSD").time == T_SERVER_EPOCH
    assert term.symbol_info_tick("EURUSD").time_msc == T_SERVER_EPOCH * 1000
    assert term.symbol_info("EURUSD").time == T_SERVER_EPOCH
    assert term.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, 0, 1)[0].time == T_SERVER_EPOCH
    deals = term.history_deals_get(0, 2**31 - 1)
    assert {d.time for d in deals} == {T_SERVER_EPOCH}
    assert {d.time_msc for d in deals} == {T_SERVER_EPOCH * 1000}
    # sim_state keeps true UTC, and says what the offset is
    state = term.sim_state()
    assert (state["server_time"], state["server_utc_offset_hours"]) == (T.isoformat(), 2.0)


def test_history_dates_are_read_in_server_time():
    term = sim()
    term.sim_open(3001, "EURUSD", "buy", "0.10")
    assert len(term.history_deals_get(T_SERVER_EPOCH, T_SERVER_EPOCH)) == 2  # deposit, IN
    # the UTC epoch is two hours before the deals on the server's clock
    assert term.history_deals_get(T_UTC_EPOCH, T_UTC_EPOCH + 3600) == ()


def test_without_an_offset_nothing_moves():
    term = sim(offset=0)
    term.sim_open(3001, "EURUSD", "buy", "0.10")
    assert term.positions_get()[0].time == T_UTC_EPOCH
    assert term.symbol_info_tick("EURUSD").time == T_UTC_EPOCH


def test_offsets_beyond_earths_clocks_are_refused():
    with pytest.raises(ValueError, match="server_utc_offset_hours"):
        sim(offset=15)


@pytest.fixture(scope="module")
def gmt2_bridge():
    bridge = start_bridge(TOKEN, "--server-utc-offset", "2")
    yield bridge
    bridge.process.terminate()
    bridge.process.wait(timeout=10)


def gateway(bridge, login: int, zone: str) -> Mt5Gateway:
    return Mt5Gateway(BridgeTerminal(bridge.url, TOKEN, timeout=5), login=login,
                      password=f"pw-{login}", server=SIM_SERVER, magic=7, server_timezone=zone)


def test_the_adapter_converts_server_time_to_utc_through_the_bridge(gmt2_bridge):
    gmt2_bridge.add_account(3101)
    ticket = gmt2_bridge.sim("sim_open", 3101, "EURUSD", "buy", "0.10", magic=7)
    gw = gateway(gmt2_bridge, 3101, "Etc/GMT-2")
    (position,) = gw.positions()
    assert position.opened_at == T
    assert gw.quote("EURUSD").time == T
    assert gw.recent_bars("EURUSD", 1)[-1].time == T
    assert gw.server_utc_offset_minutes(now=T) == 120
    # read as UTC, the same position seems to open two hours late
    (naive,) = gateway(gmt2_bridge, 3101, "UTC").positions()
    assert naive.opened_at == T + timedelta(hours=2)
    # a just-closed deal is found from T on
    closed = gw.close_position(ticket, None, "guard:test")
    assert closed.done
    deals = gw.deals(since=T)
    (out,) = [d for d in deals if d.entry == "out"]
    assert (out.ticket, out.time, out.position_id) == (closed.deal, T, ticket)


def test_a_deal_is_found_even_with_a_wrong_zone(gmt2_bridge):
    """A server configured as UTC+14 while it is UTC+2: the margin still covers it."""
    gmt2_bridge.add_account(3102)
    ticket = gmt2_bridge.sim("sim_open", 3102, "EURUSD", "sell", "0.10")
    gmt2_bridge.sim("sim_close", 3102, ticket)
    assert DEAL_WINDOW_MARGIN >= timedelta(hours=14)
    for zone in ("Etc/GMT-14", "Etc/GMT+12"):
        deals = gateway(gmt2_bridge, 3102, zone).deals(since=T, until=T)
        assert [d.entry for d in deals if d.position_id == ticket] == ["in", "out"]


def test_an_unknown_zone_is_refused():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        Mt5Gateway(object(), login=1, password="", server="s", server_timezone="Mars/Olympus")
