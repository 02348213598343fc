"""Profit and loss tick values (MetaTrader 5: SYMBOL_TRADE_TICK_VALUE_PROFIT / _LOSS).

One EURUSD tick (0.00001) on one lot is 1 USD. For a deposit currency other than USD the
simulator converts a profit at the side that gives fewer units and a loss at the side that
costs more, so the loss tick value is never below the profit one. Bar #0 of
brokers/sim/EURUSD_H1.csv: bid 1.07160, ask 1.07172 (12-point spread). GBP uses the fixed
GBPUSD 1.25000 (bid) and 1.25012 (ask, GBPUSD_SPREAD) of the simulator.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.bridge.client import BridgeTerminal
from brokers.mt5 import Mt5Gateway
from brokers.sim import ReplayClock, SimAccount, SimTerminal, load_bars
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "tick-value-token-0123456789"
BARS = load_bars()


def sim(currency: str) -> Any:
    term = SimTerminal(bars=BARS, clock=ReplayClock(3600, manual=True), accounts=[SimAccount(
        login=1201, password="pw-1201", investor_password="view-1201", server=SIM_SERVER,
        currency=currency, leverage=100, balance=Decimal(10000), name="Ticks")])
    assert term.initialize()
    assert term.login(1201, password="pw-1201", server=SIM_SERVER)
    return term


@pytest.mark.parametrize(("currency", "profit", "loss"), [
    ("USD", 1.0, 1.0),
    ("EUR", 1 / 1.07172, 1 / 1.07160),  # USD -> EUR: a profit buys EUR at the ask
    ("GBP", 1 / 1.25012, 1 / 1.25000),
])
def test_profit_and_loss_tick_values(currency, profit, loss):
    info = sim(currency).symbol_info("EURUSD")
    assert info.trade_tick_value_profit == pytest.approx(profit, rel=1e-12)
    assert info.trade_tick_value_loss == pytest.approx(loss, rel=1e-12)
    assert info.trade_tick_value_loss >= info.trade_tick_value_profit
    assert info.trade_tick_value == pytest.approx(loss, rel=1e-12)  # unchanged: bid side


class NoLossValue:
    """The simulated terminal, except that symbol_info reports no loss tick value (0.0),
    as some brokers do."""

    def __init__(self, terminal) -> None:
        self.terminal = terminal

    def __getattr__(self, name):
        return getattr(self.terminal, name)

    def symbol_info(self, symbol, /):
        return self.terminal.symbol_info(symbol)._replace(trade_tick_value_loss=0.0)


def test_the_adapter_reads_the_loss_tick_value_through_the_bridge():
    bridge = start_bridge(TOKEN)
    try:
        bridge.add_account(1301, currency="EUR")
        terminal = BridgeTerminal(bridge.url, TOKEN, timeout=5)
        spec = Mt5Gateway(terminal, login=1301, password="pw-1301",
                          server=SIM_SERVER).symbol_spec("EURUSD")
        assert float(spec.tick_value_loss) == pytest.approx(1 / 1.0716, rel=1e-12)
        assert spec.loss_tick_value == spec.tick_value_loss >= spec.tick_value
        bare = Mt5Gateway(NoLossValue(terminal), login=1301, password="pw-1301",
                          server=SIM_SERVER).symbol_spec("EURUSD")
        assert bare.tick_value_loss is None
        assert bare.loss_tick_value == bare.tick_value
    finally:
        bridge.process.terminate()
        bridge.process.wait(timeout=10)
