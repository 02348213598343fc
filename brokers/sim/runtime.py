"""Build the simulated terminal that a ``--sim`` bridge serves (the demo and the tests)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal

from brokers.sim.book import SimAccount
from brokers.sim.prices import ReplayClock, load_bars
from brokers.sim.roster import demo_roster, seed_terminal
from brokers.sim.roster import roster_part as roster_part_of_roster
from brokers.sim.terminal import SimTerminal, ticket_seed

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


BENCH_SERVER = "SimBroker-Bench"
BENCH_FIRST_LOGIN = 90000001


def seed_bench_accounts(terminal: SimTerminal, *, accounts: int, positions: int) -> None:
    """``accounts`` USD accounts (logins from 90000001, password "bench-<login>") on
    BENCH_SERVER with ``positions`` small open positions each, for bench/."""
    for i in range(accounts):
        login = BENCH_FIRST_LOGIN + i
        terminal.sim_add_account(SimAccount(
            login=login, password=f"bench-{login}", investor_password=f"view-{login}",
            server=BENCH_SERVER, currency="USD", leverage=100, balance=Decimal(100000),
            name=f"Bench {login}",
        ))
        for n in range(positions):
            terminal.sim_open(login, "EURUSD", "buy" if n % 2 else "sell", Decimal("0.10"),
                              magic=1, comment=f"bench:{n}")


def build_demo_terminal(*, bar_seconds: float, manual: bool, members: int, start_bar: int,
                        bot: bool, bench_accounts: int = 0, bench_positions: int = 5,
                        initial_orders: bool = True, server_utc_offset_hours: float = 0.0,
                        login_ms: float = 150.0, roster_part: tuple[int, int] = (1, 1),
                        ) -> tuple[SimTerminal, list[Callable[[], None]]]:
    """A terminal seeded with the demo roster; returns it and what to start in background.
    ``server_utc_offset_hours``: the simulated trade server's UTC offset (SimTerminal);
    ``login_ms``: milliseconds a login switch costs (SimTerminal); ``roster_part``
    (part, parts): hold only that part of the roster (``brokers.sim.roster.roster_part``),
    for a demo fleet of ``parts`` terminals."""
    bars = load_bars()
    clock = ReplayClock(bar_seconds=bar_seconds, start_index=start_bar, manual=manual)
    # seeded from the clock: a restarted demo terminal never reissues a ticket
    terminal = BridgedSimTerminal(bars=bars, clock=clock,
                                  server_utc_offset_hours=server_utc_offset_hours,
                                  first_ticket=ticket_seed(), login_ms=login_ms)
    roster = roster_part_of_roster(demo_roster(n_members=members) if members > 0 else [],
                                   *roster_part)
    if initial_orders:
        tickets = seed_terminal(terminal, roster)
    else:  # the accounts only: the platform's demo trader places every bot position
        tickets = {}
        for member in roster:
            for spec in member.accounts:
                terminal.sim_add_account(spec)
                tickets[spec.login] = []
    if bench_accounts:
        seed_bench_accounts(terminal, accounts=bench_accounts, positions=bench_positions)
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
