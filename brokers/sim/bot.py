"""A deterministic trading bot for the demo: keeps every roster account trading.

On each new bar ``SimBot.step()`` walks the accounts in login order and, driven by one
``random.Random(seed)``, opens a bot position (magic BOT_MAGIC, reason EXPERT), closes a bot
position (reason EXPERT) or, rarely, closes any position "by hand" (reason CLIENT, magic 0),
keeping between ``min_positions`` and ``max_positions`` open positions per account.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from brokers import mt5_api as mt5
from brokers.sim.book import SYMBOL
from brokers.sim.roster import (
    BOT_MAGIC,
    MAX_BOT_POSITIONS,
    SL_POINTS,
    TP_POINTS,
    DemoMember,
    bot_comment,
    size_volume,
    stop_levels,
)
from brokers.sim.terminal import SimTerminal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BotAction:
    kind: str  # "open" | "close" (bot, EXPERT) | "manual_close" (a person, CLIENT)
    login: int
    ticket: int  # the position's ticket


class SimBot:
    """Opens and closes positions on the roster's accounts, one decision per account per
    step. The same terminal state and seed give the same actions."""

    def __init__(self, terminal: SimTerminal, roster: list[DemoMember], *, seed: int = 11,
                 min_positions: int = 1, max_positions: int = MAX_BOT_POSITIONS,
                 open_chance: float = 0.12, close_chance: float = 0.08,
                 manual_close_chance: float = 0.01) -> None:
        if not 0 < min_positions <= max_positions:
            raise ValueError("need 0 < min_positions <= max_positions")
        self.terminal = terminal
        self.min_positions = min_positions
        self.max_positions = max_positions
        self.open_chance = open_chance
        self.close_chance = close_chance
        self.manual_close_chance = manual_close_chance
        self._rng = random.Random(seed)
        self._accounts = {a.login: a for m in roster for a in m.accounts}
        self._opened = {login: 0 for login in self._accounts}  # for the comment tags
        for member in roster:
            for order in member.initial_orders:
                self._opened[order.login] += 1

    def step(self) -> list[BotAction]:
        """One decision per account; returns what was done."""
        actions: list[BotAction] = []
        for login in sorted(self._accounts):
            positions = self.terminal.sim_positions(login)
            count, roll = len(positions), self._rng.random()
            if count < self.min_positions:
                action = self._open(login)
            elif roll < self.manual_close_chance and count > self.min_positions:
                action = self._close(login, [p.ticket for p in positions], manual=True)
            elif roll < self.manual_close_chance + self.close_chance and \
                    count > self.min_positions:
                bot_tickets = [p.ticket for p in positions if p.magic == BOT_MAGIC]
                action = self._close(login, bot_tickets, manual=False) if bot_tickets else None
            elif roll < self.manual_close_chance + self.close_chance + self.open_chance and \
                    count < self.max_positions:
                action = self._open(login)
            else:
                action = None
            if action is not None:
                actions.append(action)
        return actions

    def run_forever(self, stop_event: threading.Event, poll_seconds: float = 0.5) -> None:
        """Call ``step()`` each time a new bar starts, until ``stop_event`` is set."""
        last: int | None = None
        while not stop_event.is_set():
            try:
                counter = int(self.terminal.sim_state()["bar_counter"])
                if last is not None and counter != last:
                    actions = self.step()
                    log.info("bar %s: bot %s", counter, [(a.kind, a.login) for a in actions])
                last = counter
            except Exception:  # keep the demo alive; the next bar tries again
                log.exception("sim bot step failed")
            stop_event.wait(poll_seconds)

    def _open(self, login: int) -> BotAction | None:
        account = self._accounts[login]
        side = self._rng.choice(("buy", "sell"))
        sl_points, tp_points = self._rng.choice(SL_POINTS), self._rng.choice(TP_POINTS)
        bid, ask = self.terminal.sim_quote(SYMBOL)
        sl, tp = stop_levels(side, sl_points, tp_points, bid, ask)
        self._opened[login] += 1
        try:
            ticket = self.terminal.sim_open(
                login, SYMBOL, side, size_volume(account, sl_points), sl=sl, tp=tp,
                magic=BOT_MAGIC, comment=bot_comment(login, self._opened[login]),
            )
        except ValueError as refused:  # e.g. not enough free margin left
            log.info("bot open on %s refused: %s", login, refused)
            return None
        return BotAction("open", login, ticket)

    def _close(self, login: int, tickets: list[int], *, manual: bool) -> BotAction | None:
        ticket = self._rng.choice(tickets)
        reason = mt5.DEAL_REASON_CLIENT if manual else mt5.DEAL_REASON_EXPERT
        try:
            self.terminal.sim_close(login, ticket, reason=reason)
        except ValueError:  # closed meanwhile by its SL/TP or a stop-out
            return None
        return BotAction("manual_close" if manual else "close", login, ticket)
