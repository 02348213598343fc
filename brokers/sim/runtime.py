"""Build the simulated terminal that a ``--sim`` bridge serves (the demo and the tests)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal

from brokers.sim.book import SimAccount
from brokers.sim.prices import ReplayClock, load_bars
from brokers.sim.roster import demo_roster, seed_terminal
from brokers.sim.terminal import SimTerminal

logger = logging.getLogger("mt5.sim")


class BridgedSimTerminal(SimTerminal):
    """The simulated terminal with a JSON-friendly way to add accounts over the bridge."""

    def sim_create_account(self, login: int, password: str, investor_password: str,
                           server: str, currency: str, leverage: int, balance: float | str,
                           name: str = "") -> bool:
        self.sim_add_account(SimAccount(
            login=int(login), password=password, investor_password=investor_password,
            server=server, currency=currency, leverage=int(leverage),
            balance=Decimal(str(balance)), name=name or f"Account {login}",
        ))
        return True


def build_demo_terminal(*, bar_seconds: float, manual: bool, members: int, start_bar: int,
                        bot: bool) -> tuple[SimTerminal, list[Callable[[], None]]]:
    """A terminal seeded with the demo roster; returns it and what to start in background."""
    bars = load_bars()
    clock = ReplayClock(bar_seconds=bar_seconds, start_index=start_bar, manual=manual)
    terminal = BridgedSimTerminal(bars=bars, clock=clock)
    roster = demo_roster(n_members=members) if members > 0 else []
    tickets = seed_terminal(terminal, roster)
    logger.info("simulated terminal: %d accounts, %d bot positions, %s",
                len(tickets), sum(len(t) for t in tickets.values()),
                "manual clock" if manual else f"one H1 bar every {bar_seconds:g} s")
    background: list[Callable[[], None]] = []
    if bot and roster:
        from brokers.sim.bot import SimBot

        stop = threading.Event()
        sim_bot = SimBot(terminal, roster)
        background.append(lambda: threading.Thread(
            target=sim_bot.run_forever, args=(stop,), name="sim-bot", daemon=True
        ).start())
    return terminal, background
