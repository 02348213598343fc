"""The simulated terminal's login switch latency (``SimTerminal(login_ms=...)``, the bridge's
``--login-ms``).

Waits are counted with an injected fake clock: ``sleep(seconds)`` moves it forward and
records the wait, so nothing here depends on the machine's speed.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.sim import ReplayClock, SimAccount, SimTerminal, load_bars
from brokers.sim.runtime import build_demo_terminal
from tests.conftest import start_bridge

BARS = load_bars()
SERVER = "Sim-Latency"
TOKEN = "test-bridge-token-0123456789"


class FakeClock:
    """A clock that only ``sleep`` moves: ``now`` seconds, ``waits`` every wait asked."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def account(login: int) -> SimAccount:
    return SimAccount(login=login, password=f"pw{login}", investor_password=f"inv{login}",
                      server=SERVER, currency="USD", leverage=100, balance=Decimal(10000),
                      name=f"Trader {login}")


def terminal(login_ms: float, clock: FakeClock) -> SimTerminal:
    term = SimTerminal(bars=BARS, clock=ReplayClock(3600, manual=True),
                       accounts=[account(1001), account(1002)], login_ms=login_ms,
                       sleep=clock.sleep)
    assert term.initialize()  # no login: no switch
    return term


def test_a_switch_to_another_account_costs_login_ms():
    clock = FakeClock()
    term = terminal(150, clock)
    assert clock.waits == []

    assert term.login(1001, password="pw1001", server=SERVER)
    assert clock.now == pytest.approx(0.150)  # 150 ms / 1000, once
    assert term.account_info().login == 1001

    assert term.login(1002, password="pw1002", server=SERVER)
    assert clock.waits == [pytest.approx(0.150), pytest.approx(0.150)]
    assert clock.now >= 0.300 - 1e-9  # two switches: at least 2 × 150 ms


def test_a_login_to_the_account_already_logged_in_costs_nothing():
    clock = FakeClock()
    term = terminal(150, clock)
    assert term.login(1001, password="pw1001", server=SERVER)
    waited = list(clock.waits)

    for _ in range(5):
        assert term.login(1001, password="pw1001", server=SERVER)
    assert term.initialize(login=1001, password="pw1001", server=SERVER)
    assert term.positions_get() == ()  # reads cost nothing either
    assert clock.waits == waited  # still only the first switch


def test_a_refused_login_costs_the_attempt_and_logs_out():
    clock = FakeClock()
    term = terminal(200, clock)
    assert term.login(1001, password="pw1001", server=SERVER)
    assert not term.login(1001, password="wrong", server=SERVER)  # the server said no
    assert clock.waits == [pytest.approx(0.200), pytest.approx(0.200)]
    assert term.account_info() is None  # logged out, as after a failed real login
    assert term.login(1001, password="pw1001", server=SERVER)  # logging back in is a switch
    assert len(clock.waits) == 3


def test_login_ms_zero_switches_at_once():
    clock = FakeClock()
    term = terminal(0, clock)
    assert term.login(1001, password="pw1001", server=SERVER)
    assert term.login(1002, password="pw1002", server=SERVER)
    assert term.login(1001, password="pw1001", server=SERVER)
    assert clock.waits == []


def test_a_negative_login_ms_is_refused():
    with pytest.raises(ValueError, match="login_ms"):
        SimTerminal(bars=BARS, login_ms=-1)


def test_the_demo_terminal_defaults_to_150_ms():
    term, _ = build_demo_terminal(bar_seconds=3600, manual=True, members=0, start_bar=0,
                                  bot=False)
    assert term.login_ms == 150
    term, _ = build_demo_terminal(bar_seconds=3600, manual=True, members=0, start_bar=0,
                                  bot=False, login_ms=0)
    assert term.login_ms == 0


def test_the_bridge_cli_passes_login_ms_to_the_terminal():
    # tests/conftest.py starts bridges with --login-ms 0; a later --login-ms wins (argparse)
    bridge = start_bridge(TOKEN, "--login-ms", "250")
    try:
        assert bridge.sim("sim_state")["login_ms"] == 250
    finally:
        bridge.process.terminate()
        bridge.process.wait(timeout=10)
    bridge = start_bridge(TOKEN)
    try:
        assert bridge.sim("sim_state")["login_ms"] == 0
    finally:
        bridge.process.terminate()
        bridge.process.wait(timeout=10)
