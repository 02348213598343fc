"""The fleet of terminals: which terminal reads an account, and one call sequence at a time.

A MetaTrader 5 terminal is logged into one account at a time, so every call sequence about
an account ("log in, read the account, its positions, its deals") holds its terminal's
lease: one conditional UPDATE on ``Terminal`` (``terminal_lease_acquire``), shared by every
worker on every machine through the database, released after the sequence
(``terminal_lease_release``, which also writes the terminal's health) and expiring after
``TERMINAL_LEASE_SECONDS`` so a killed worker's lease is not eternal.

Assignment (``terminal_assign``, ``terminals_rebalance``) is sticky and balanced by
capacity: an account keeps its terminal while that terminal is enabled and healthy; a new
or orphaned account goes to the healthy terminal of its kind with the most free capacity
(capacity − accounts held) that serves its trade server. A terminal with
``TERMINAL_FAILOVER_FAILURES`` failures in a row is unhealthy, and its accounts move to
healthy ones. One foreign key holds the assignment, changed by a conditional UPDATE on the
old value, so an account is never on two terminals.

An account without a terminal (no ``Terminal`` row registered: the embedded demo's
one-terminal default) is read through ``MT5_BRIDGE_URL``; that bridge serialises its own
calls, and there is no row to lease.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts import metrics
from accounts.models import Terminal, TradingAccount

#: the terminal kind that serves each broker (TradingAccount.Broker → Terminal.Kind)
KIND_FOR_BROKER = {TradingAccount.Broker.MT5: Terminal.Kind.MT5,
                   TradingAccount.Broker.IBKR: Terminal.Kind.IB_GATEWAY}
LEASE_POLL_SECONDS = 0.01
#: a priority caller (a priority read, a re-check, a close) waiting for a terminal holds
#: routine call sequences back this long, renewed while it waits
PRIORITY_WAIT_SECONDS = 1.0


def terminal_healthy(terminal: Terminal) -> bool:
    """Enabled, and fewer than ``TERMINAL_FAILOVER_FAILURES`` failed call sequences in a
    row."""
    return terminal.enabled and (
        terminal.consecutive_failures < settings.TERMINAL_FAILOVER_FAILURES)


def _healthy() -> Q:
    return Q(enabled=True, consecutive_failures__lt=settings.TERMINAL_FAILOVER_FAILURES)


def _serves(terminal: Terminal, *, kind: str, server: str) -> bool:
    return terminal.kind == kind and (not terminal.servers or server in terminal.servers)


@dataclass(slots=True)
class _Load:
    terminal: Terminal
    held: int

    @property
    def free(self) -> int:
        return self.terminal.capacity - self.held


def _loads() -> list[_Load]:
    """Every healthy terminal with the number of active accounts it holds (one query)."""
    rows = Terminal.objects.filter(_healthy()).annotate(
        held=Count("accounts", filter=Q(accounts__is_active=True))).order_by("id")
    return [_Load(t, t.held) for t in rows]


def _pick(loads: list[_Load], *, kind: str, server: str) -> _Load | None:
    """The load with the most free capacity serving (kind, server); ties: the lowest id."""
    fitting = [load for load in loads
               if load.free > 0 and _serves(load.terminal, kind=kind, server=server)]
    return max(fitting, key=lambda load: (load.free, -load.terminal.pk), default=None)


def terminal_for_link(*, broker: str, server: str) -> Terminal | None:
    """The terminal a new account of ``broker`` at ``server`` would be assigned (the one
    with the most free capacity among the healthy ones serving it), or None: none is
    registered or none fits (the account then uses ``MT5_BRIDGE_URL``, or waits for
    ``terminals_rebalance``)."""
    load = _pick(_loads(), kind=KIND_FOR_BROKER[broker], server=server)
    return None if load is None else load.terminal


def terminal_assign(*, account: TradingAccount) -> Terminal | None:
    """Give ``account`` a terminal, sticky: it keeps a healthy one it has. Otherwise the
    healthy terminal with the most free capacity for its kind and server, written by a
    conditional UPDATE on the terminal it had (a concurrent assignment of the same account
    wins once; this one then answers what the winner wrote). Returns the account's
    terminal, or None when no terminal fits."""
    current = account.terminal
    if current is not None and terminal_healthy(current):
        return current
    chosen = terminal_for_link(broker=account.broker, server=account.server)
    if chosen is None:
        return current
    # the race: two workers moving one account each pick a terminal; the UPDATE on the
    # old value lets exactly one of them write
    moved = TradingAccount.objects.filter(pk=account.pk, terminal=current).update(
        terminal=chosen)
    if not moved:
        account.refresh_from_db(fields=["terminal"])
        return account.terminal
    account.terminal = chosen
    return chosen


def terminals_rebalance(*, limit: int = 1000) -> int:
    """Assign active accounts with no terminal, or on an unhealthy one (failover after
    ``TERMINAL_FAILOVER_FAILURES`` failures in a row, or disabled), to healthy terminals,
    balanced by free capacity. No-op (one query) when no terminal is registered. At most
    ``limit`` accounts per call; one conditional UPDATE per moved account (rare). Returns
    how many moved."""
    loads = _loads()
    if not loads:
        return 0
    healthy_ids = [load.terminal.pk for load in loads]
    orphans = (TradingAccount.objects.filter(is_active=True)
               .filter(Q(terminal__isnull=True) | ~Q(terminal_id__in=healthy_ids))
               .order_by("id").values_list("id", "broker", "server", "terminal_id")[:limit])
    moved = 0
    for account_id, broker, server, old in orphans:
        load = _pick(loads, kind=KIND_FOR_BROKER[broker], server=server)
        if load is None:
            continue
        # conditional on the old terminal: never two terminals, never a lost update
        if TradingAccount.objects.filter(pk=account_id, terminal_id=old).update(
                terminal=load.terminal):
            load.held += 1
            moved += 1
    if moved:
        metrics.terminal_failover_total.inc(moved)
    return moved


# --- one call sequence at a time ---
def terminal_lease_acquire(*, terminal_id: int, priority: bool = False,
                           seconds: float | None = None) -> uuid.UUID | None:
    """Take terminal ``terminal_id``'s lease for one call sequence, or None while another
    holds it (or, for a routine read, while a priority read waits: ``priority_until``).

    One conditional UPDATE: on PostgreSQL a concurrent UPDATE of the row waits for the
    first to commit, then re-checks the WHERE and finds the lease taken, so two workers on
    any machines never both hold it. The lease expires after ``seconds`` (default
    ``TERMINAL_LEASE_SECONDS``): a killed worker's lease is taken over then."""
    token = uuid.uuid4()
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    if not priority:
        free &= Q(priority_until__isnull=True) | Q(priority_until__lt=now)
    until = now + timedelta(seconds=seconds or settings.TERMINAL_LEASE_SECONDS)
    taken = Terminal.objects.filter(free, pk=terminal_id).update(lease_token=token,
                                                                  lease_until=until)
    return token if taken else None


def terminal_lease_release(*, terminal_id: int, token: uuid.UUID, ok: bool | None,
                           seconds: float, error: str = "", name: str | None = None) -> None:
    """Give the lease back and record the sequence's health in the same UPDATE: ``ok``
    True (a good call: failures reset), False (the terminal failed: unreachable, timed
    out, refused the token) or None (the account's own fault, e.g. a wrong password:
    health untouched). ``seconds``: the sequence's duration. A lease that expired and was
    taken over is left to its new holder (the token no longer matches). ``name``: the
    terminal's, for the ``mt5_terminal_call_seconds`` label (read when not given)."""
    now = timezone.now()
    fields: dict = {"lease_token": None, "lease_until": None}
    if ok is True:
        fields.update(last_ok_at=now, consecutive_failures=0,
                      latency_ms=min(int(seconds * 1000), 2**31 - 1))
    elif ok is False:
        fields.update(last_failure_at=now, consecutive_failures=F("consecutive_failures") + 1,
                      last_error=error[:500])
    Terminal.objects.filter(pk=terminal_id, lease_token=token).update(**fields)
    if ok is None:
        return
    if name is None:
        name = Terminal.objects.filter(pk=terminal_id).values_list("name", flat=True).first()
    if name is not None:
        metrics.terminal_call_seconds.labels(terminal=name).observe(seconds)


class TerminalBusy(Exception):
    """The terminal's lease could not be taken before the deadline."""

    code = "terminal_busy"


@contextmanager
def terminal_session(*, terminal_id: int | None, deadline: float, priority: bool = False,
                     name: str | None = None) -> Iterator[_Session]:
    """Hold terminal ``terminal_id``'s lease for one call sequence, waiting for it until
    ``deadline`` (``time.monotonic()`` seconds); None: the default terminal, no lease.
    The caller sets ``session.ok`` (see ``terminal_lease_release``) before leaving.
    Raises TerminalBusy when the deadline passes first."""
    session = _Session()
    if terminal_id is None:
        yield session
        return
    flagged = 0.0
    while (token := terminal_lease_acquire(terminal_id=terminal_id, priority=priority)) is None:
        now = time.monotonic()
        if now >= deadline:
            raise TerminalBusy(f"terminal {terminal_id} busy until the batch's deadline")
        if priority and now - flagged > PRIORITY_WAIT_SECONDS / 2:
            # a priority caller waiting holds routine sequences back, so it is next
            terminal_priority_request(terminal_ids=[terminal_id],
                                      seconds=PRIORITY_WAIT_SECONDS, extend_only=True)
            flagged = now
        time.sleep(LEASE_POLL_SECONDS)
    started = time.perf_counter()
    try:
        yield session
    finally:
        terminal_lease_release(terminal_id=terminal_id, token=token, ok=session.ok,
                               seconds=time.perf_counter() - started, error=session.error,
                               name=name)


@dataclass(slots=True)
class _Session:
    ok: bool | None = None
    error: str = ""


def terminal_priority_request(*, terminal_ids: Iterable[int], seconds: float,
                              extend_only: bool = False) -> datetime:
    """Hold routine call sequences back from these terminals for at most ``seconds``, so
    a priority read queued now takes the lease first. One UPDATE (``extend_only``: only
    where it would hold them longer than now); returns the stamp the priority read
    passes to ``terminal_priority_done``."""
    until = timezone.now() + timedelta(seconds=seconds)
    rows = Terminal.objects.filter(pk__in=list(terminal_ids))
    if extend_only:
        rows = rows.filter(Q(priority_until__isnull=True) | Q(priority_until__lt=until))
    rows.update(priority_until=until)
    return until


def terminal_priority_done(*, terminal_ids: Iterable[int], stamp: datetime) -> None:
    """Let routine reads in again, unless a newer priority request came meanwhile."""
    Terminal.objects.filter(pk__in=list(terminal_ids), priority_until__lte=stamp).update(
        priority_until=None)
