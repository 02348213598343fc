"""A simulated MetaTrader 5 terminal replaying real EURUSD H1 prices (no Django here)."""

from __future__ import annotations

from brokers.sim.book import GBPUSD_RATE, SimAccount
from brokers.sim.prices import Bar, ReplayClock, load_bars
from brokers.sim.terminal import SimTerminal

__all__ = ["GBPUSD_RATE", "Bar", "ReplayClock", "SimAccount", "SimTerminal", "load_bars"]
