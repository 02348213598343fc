"""Trade server time: MetaTrader 5 reports times in the server's wall clock. The server's
zone is detected when an account is first linked there, and every broker time is stored
as real UTC, through a GMT+2 simulated server behind the real bridge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.gateways import _zones
from accounts.models import TradeServer
from accounts.services import account_link
from brokers.sim.prices import load_bars
from pipeline.services import accounts_sync
from positions.models import Position
from tests.conftest import SIM_SERVER, start_bridge

pytestmark = pytest.mark.django_db

FRIDAY_2000 = 59


@pytest.fixture
def gmt2_bridge(settings):
    """A simulated GMT+2 trade server (as most MetaTrader 5 brokers run) behind a bridge."""
    bridge = start_bridge(settings.MT5_BRIDGE_TOKEN, "--server-utc-offset", "2")
    settings.MT5_BRIDGE_URL = bridge.url
    settings.MT5_CONNECTION_TIMEOUT = 3
    _zones.clear()
    yield bridge
    _zones.clear()
    bridge.process.terminate()
    bridge.process.wait(timeout=10)


def test_times_from_a_gmt2_server_are_stored_as_utc(gmt2_bridge, member, settings):
    # The replay is in 2017, so the last tick cannot tell the offset: the default applies,
    # and says so; the owner (here the setting) names the zone.
    settings.MT5_DEFAULT_SERVER_TIMEZONE = "Etc/GMT-2"
    gmt2_bridge.add_account(9701)
    account = account_link(user=member, login=9701, password="pw-9701", server=SIM_SERVER)
    server = TradeServer.objects.get(name=SIM_SERVER)
    assert server.timezone == "Etc/GMT-2" and server.detected_offset_minutes is None
    assert "not detected" in server.detection

    gmt2_bridge.sim("sim_advance", FRIDAY_2000)
    ticket = int(gmt2_bridge.sim("sim_open", 9701, "EURUSD", "buy", "0.10", magic=1))
    accounts_sync(account_ids=[account.pk])
    position = Position.objects.get(account=account, ticket=ticket)
    # opened at the start of bar 59 of the CSV, whose times are UTC: 2017-04-21 20:00 UTC
    # (the server itself says 22:00)
    assert position.opened_at == load_bars()[FRIDAY_2000].time
    assert position.opened_at == datetime(2017, 4, 21, 20, 0, tzinfo=UTC)

    gmt2_bridge.sim("sim_advance", 0, fraction=0.5)
    gmt2_bridge.sim("sim_close", 9701, ticket)
    accounts_sync(account_ids=[account.pk])
    position.refresh_from_db()
    # the closing deal was found (the history window is asked for in server time) and
    # its time is UTC: half way through the bar, 20:30 UTC
    assert position.status == "closed" and position.realized_pnl is not None
    assert position.closed_at == datetime(2017, 4, 21, 20, 30, tzinfo=UTC)


def test_the_zone_is_detected_from_a_live_tick(member, settings, monkeypatch):
    """A terminal whose clock is now (a replay shifted to today) on a GMT+2 server: the
    last tick is 2 h ahead of UTC, so the server is registered as Etc/GMT-2."""
    from brokers.mt5 import Mt5Gateway
    from brokers.sim.prices import ReplayClock
    from brokers.sim.runtime import BridgedSimTerminal

    bars = load_bars()
    now = timezone.now().replace(microsecond=0)
    bars = [b.shifted(now - bars[-1].time) for b in bars]
    clock = ReplayClock(3600.0, manual=True, start_index=len(bars) - 1)
    terminal = BridgedSimTerminal(bars=bars, clock=clock, server_utc_offset_hours=2)
    assert terminal.initialize()
    terminal.sim_create_account(9702, "pw-9702", "view-9702", "Live-GMT2", "USD", 100, "1000")

    def open_gateway(*, login, password, server, **_):
        return Mt5Gateway(terminal, login=int(login), password=password, server=server)

    monkeypatch.setattr("accounts.services.open_gateway", open_gateway)
    account_link(user=member, login=9702, password="pw-9702", server="Live-GMT2")

    server = TradeServer.objects.get(name="Live-GMT2")
    assert (server.timezone, server.detected_offset_minutes) == ("Etc/GMT-2", 120)
    assert server.detected_at is not None and "detected at link" in server.detection
    # a second account on the same server keeps the owner's choice
    TradeServer.objects.filter(pk=server.pk).update(timezone="Europe/Athens")
    terminal.sim_create_account(9703, "pw-9703", "view-9703", "Live-GMT2", "USD", 100, "1000")
    account_link(user=member, login=9703, password="pw-9703", server="Live-GMT2")
    assert TradeServer.objects.get(pk=server.pk).timezone == "Europe/Athens"


def test_the_daily_floor_uses_the_broker_day(sim_bridge, linked_account):
    """The trading day starts at 00:00 server time (22:00 UTC on a GMT+2 server)."""
    from guards.models import AccountGuardState, GuardSettings
    from guards.services import accounts_guard, guard_settings_get

    guard_settings_get()
    GuardSettings.objects.filter(pk=1).update(daily_loss_percent=Decimal(5))
    TradeServer.objects.create(name=SIM_SERVER, timezone="Etc/GMT-2")
    account = linked_account(9704)
    accounts_sync(account_ids=[account.pk])
    now = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)  # 01:30 on the 3rd, server time
    accounts_guard(account_ids=[account.pk], now=now)
    state = AccountGuardState.objects.get(account=account)
    assert state.day_start_at == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
    assert now - state.day_start_at == timedelta(hours=1, minutes=30)
