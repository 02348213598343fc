"""The deterministic demo roster: members, their simulated accounts and the bot's first trades.

Shared by the demo terminal process (which seeds a ``SimTerminal`` with it) and the Django
seed command (which creates the matching users and accounts), so both sides agree on logins,
passwords and servers without talking to each other. Same arguments, same roster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from brokers.sim.book import POINT, SYMBOL, VOLUME_MAX, VOLUME_MIN, VOLUME_STEP, SimAccount
from brokers.sim.terminal import SimTerminal

DEMO_SERVER = "SimBroker-Demo"
BOT_MAGIC = 20240101
#: The comment of the demo bot's 30 % withdrawal (the smoke test's guard_check looks for it).
DEMO_WITHDRAWAL_COMMENT = "demo withdrawal 30 %"
#: the IB Gateway stand-in's paper accounts (its defaults: 100,000 USD and 50,000 EUR); the
#: demo links both, and the Procfile's ``ibgateway`` seeds their positions
DEMO_IB_ACCOUNTS = (("DU1234567", "USD"), ("DU7654321", "EUR"))
FIRST_LOGIN = 51000001
LEVERAGES = (30, 100, 100, 200, 500)
BALANCES = (500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000)
SL_POINTS = (None, 150, 250, 400, 600, 600)
TP_POINTS = (None, None, 300, 500, 800)
MAX_BOT_POSITIONS = 6
RISK_SHARE = Decimal("0.005")  # of the balance lost if the SL (or UNSTOPPED_POINTS) is hit
MARGIN_SHARE = Decimal("0.05")  # of the balance used as margin by one position
UNSTOPPED_POINTS = 600  # sizing distance for a position without a stop loss
# Rough conversions for SIZING ONLY (the terminal uses live prices and GBPUSD_RATE)
_SIZING_EURUSD = Decimal("1.10")
_SIZING_GBPUSD = Decimal("1.25")
_FIRST_NAMES = (
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kemal", "Lena", "Marco", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sami", "Tariq",
    "Ulla", "Viktor", "Wen", "Yara", "Zoltan",
)
_LAST_NAMES = (
    "Adler", "Berg", "Costa", "Dubois", "Engel", "Fischer", "Garcia", "Hansen", "Ito",
    "Jensen", "Kowalski", "Laurent", "Moreau", "Novak", "Olsen", "Petrov", "Rossi", "Silva",
)


@dataclass(frozen=True, slots=True)
class InitialOrder:
    """A bot position to open when the demo starts. Distances are in points (0.00001)."""

    login: int
    symbol: str
    side: str  # "buy" | "sell"
    volume: Decimal  # lots
    sl_points: int | None
    tp_points: int | None


@dataclass(frozen=True, slots=True)
class DemoMember:
    """A club member of the demo: who they are, their accounts, the bot's first positions."""

    username: str
    first_name: str
    last_name: str
    telegram_id: int
    accounts: tuple[SimAccount, ...]
    initial_orders: tuple[InitialOrder, ...]


def demo_password(login: int) -> str:
    """Master (trading) password of a demo account."""
    return f"demo-{login}"


def investor_password(login: int) -> str:
    """Investor (read-only) password of a demo account."""
    return f"view-{login}"


def size_volume(account: SimAccount, sl_points: int | None) -> Decimal:
    """Lots for one bot position: at most RISK_SHARE of the balance lost at the stop (or at
    UNSTOPPED_POINTS without one), at most MARGIN_SHARE of the balance as margin, rounded
    down to the volume step, never below the 0.01 minimum. One point on one lot is 1 USD."""
    to_account = {"USD": Decimal(1), "EUR": 1 / _SIZING_EURUSD, "GBP": 1 / _SIZING_GBPUSD}
    point_value = to_account[account.currency]  # one point, one lot, in the deposit currency
    margin_per_lot = Decimal(100000) / account.leverage * _SIZING_EURUSD * point_value
    by_risk = account.balance * RISK_SHARE / ((sl_points or UNSTOPPED_POINTS) * point_value)
    by_margin = account.balance * MARGIN_SHARE / margin_per_lot
    lots = (min(by_risk, by_margin) / VOLUME_STEP).to_integral_value(ROUND_FLOOR) * VOLUME_STEP
    return min(max(lots, VOLUME_MIN), VOLUME_MAX)


def stop_levels(side: str, sl_points: int | None, tp_points: int | None, bid: Decimal,
                ask: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """(sl, tp) prices at the given distances: a buy's stops sit around the bid (where it
    closes), a sell's around the ask."""
    if side == "buy":
        return (None if sl_points is None else bid - sl_points * POINT,
                None if tp_points is None else bid + tp_points * POINT)
    return (None if sl_points is None else ask + sl_points * POINT,
            None if tp_points is None else ask - tp_points * POINT)


def _currency(k: int) -> str:
    """Mostly USD; account numbers 2, 9, 16, ... are GBP and 5, 12, 19, ... EUR, so any
    roster of 20 accounts or more has at least 3 GBP and 3 EUR accounts."""
    return {2: "GBP", 5: "EUR"}.get(k % 7, "USD")


def demo_roster(n_members: int = 20, seed: int = 7) -> list[DemoMember]:
    """``n_members`` members with 1 or 2 accounts each, logins from FIRST_LOGIN upward."""
    rng = random.Random(seed)
    first_names = rng.sample(_FIRST_NAMES, len(_FIRST_NAMES))
    telegram_ids = rng.sample(range(100_000_000, 999_999_999), n_members)
    members: list[DemoMember] = []
    k = 0  # account number across the roster
    for i in range(n_members):
        first = first_names[i % len(first_names)]
        last = rng.choice(_LAST_NAMES)
        accounts: list[SimAccount] = []
        orders: list[InitialOrder] = []
        for _ in range(2 if rng.random() < 0.2 else 1):
            login = FIRST_LOGIN + k
            balance = 250000 if k == 0 else 500 if k == 1 else rng.choice(BALANCES)
            account = SimAccount(
                login=login, password=demo_password(login),
                investor_password=investor_password(login), server=DEMO_SERVER,
                currency=_currency(k), leverage=rng.choice(LEVERAGES),
                balance=Decimal(balance), name=f"{first} {last}",
            )
            accounts.append(account)
            for _ in range(rng.randint(1, 5)):
                sl_points = rng.choice(SL_POINTS)
                orders.append(InitialOrder(
                    login=login, symbol=SYMBOL, side=rng.choice(("buy", "sell")),
                    volume=size_volume(account, sl_points), sl_points=sl_points,
                    tp_points=rng.choice(TP_POINTS),
                ))
            k += 1
        members.append(DemoMember(
            username=f"{first.lower()}{i + 1:02d}", first_name=first, last_name=last,
            telegram_id=telegram_ids[i], accounts=tuple(accounts), initial_orders=tuple(orders),
        ))
    return members


def roster_part(roster: list[DemoMember], part: int, parts: int) -> list[DemoMember]:
    """The accounts of ``roster`` that terminal ``part`` of ``parts`` holds (1-based): the
    account numbers k (login − FIRST_LOGIN) with k mod ``parts`` = ``part`` − 1, with their
    initial orders; a member without such an account is left out. ``parts`` 1: the whole
    roster. The demo runs two terminals (Procfile ``terminal`` 1/2, ``terminal2`` 2/2) and
    the seed assigns each account to the terminal holding it. Raises ValueError unless
    1 ≤ part ≤ parts."""
    if not 1 <= part <= parts:
        raise ValueError(f"roster part {part}/{parts}: need 1 <= part <= parts")
    if parts == 1:
        return roster
    chosen: list[DemoMember] = []
    for member in roster:
        accounts = tuple(a for a in member.accounts
                         if (a.login - FIRST_LOGIN) % parts == part - 1)
        if accounts:
            logins = {a.login for a in accounts}
            chosen.append(DemoMember(
                username=member.username, first_name=member.first_name,
                last_name=member.last_name, telegram_id=member.telegram_id, accounts=accounts,
                initial_orders=tuple(o for o in member.initial_orders if o.login in logins)))
    return chosen


def roster_part_of(login: int, parts: int) -> int:
    """Which part (1-based, of ``parts``) holds demo account ``login`` (``roster_part``)."""
    return (login - FIRST_LOGIN) % parts + 1


def bot_comment(login: int, n: int) -> str:
    """The bot's order comment tag (well under MetaTrader 5's 31 characters)."""
    return f"bot:{login}:{n}"


def seed_terminal(terminal: SimTerminal, roster: list[DemoMember]) -> dict[int, list[int]]:
    """Add every roster account to ``terminal`` and open its initial bot positions (magic
    BOT_MAGIC, comment "bot:<login>:<n>") at market. Returns the tickets by login."""
    tickets: dict[int, list[int]] = {}
    for member in roster:
        for account in member.accounts:
            terminal.sim_add_account(account)
            tickets[account.login] = []
        for order in member.initial_orders:
            bid, ask = terminal.sim_quote(order.symbol)
            sl, tp = stop_levels(order.side, order.sl_points, order.tp_points, bid, ask)
            n = len(tickets[order.login]) + 1
            tickets[order.login].append(terminal.sim_open(
                order.login, order.symbol, order.side, order.volume, sl=sl, tp=tp,
                magic=BOT_MAGIC, comment=bot_comment(order.login, n),
            ))
    return tickets
