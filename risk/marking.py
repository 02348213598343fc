"""The mark-to-market pass: every open account's equity estimated from its stored positions
and the latest quotes, in a constant number of statements, and the accounts near a
threshold picked for a priority read (issue 11 §2).

The arithmetic is ``risk.mtm`` (pure, tested by hand-computed tables); this module loads
its inputs set-based and stores its outputs:

1. ``mark_inputs_load``: the open positions (1 query), their accounts' stored figures
   (1), the held symbols' specs (1), each account's guard thresholds
   (``guards.services.configuration.effective_settings``, at most 4), the marks of the
   last pass (1) and the running liquidation episodes (1: their accounts are re-checked
   by the episode, never asked again). ``MarkInputs.symbols_wanted`` names the quotes it
   needs: the held symbols and the pairs that convert a profit currency into a deposit
   currency.
2. ``marks_apply``: ``risk.mtm.equity_estimates`` once per distinct set of thresholds,
   and the accounts that need a priority read now: estimated at warning, near critical
   (within ``near_critical_points`` of the critical drawdown) or critical, whose last
   ask has been answered (``may_ask``), at most ``batch`` per terminal, most urgent first;
3. ``marks_store`` (after the caller queued those reads): one upsert of every estimate
   (``AccountMark``), stamping ``read_requested_at`` on the accounts asked to read.

**An estimate never closes anything.** It writes only ``AccountMark``; the caller queues a
priority read (``pipeline.tasks.accounts_priority_read``), and only that fresh read goes
through the guard. ``estimate_errors_observe`` compares each stored estimate with the next
real read (``guard_estimate_error_percent``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import F, Q
from django.utils import timezone

from accounts.models import TradingAccount
from brokers.gateway import Quote, Side
from guards.levels import DrawdownThresholds
from guards.models import LiquidationEpisode
from guards.services.configuration import effective_settings
from positions.models import Instrument, Position
from risk import metrics
from risk.models import AccountMark
from risk.mtm import (
    VIA,
    AccountFigures,
    EquityEstimate,
    Estimate,
    HeldPosition,
    SymbolTerms,
    equity_estimates,
    estimate_error_percent,
)


@dataclass(slots=True)
class MarkInputs:
    """What one pass reads from the database: stored figures in each account's deposit
    currency, open positions (lots, price units, swap in the deposit currency), specs by
    (server, symbol), thresholds per account, each account's terminal (None: the default)
    and when its last priority read was asked for."""

    accounts: list[AccountFigures] = field(default_factory=list)
    positions: list[HeldPosition] = field(default_factory=list)
    terms: dict[tuple[str, str], SymbolTerms] = field(default_factory=dict)
    thresholds: dict[int, DrawdownThresholds] = field(default_factory=dict)
    terminals: dict[int, int | None] = field(default_factory=dict)
    requested: dict[int, datetime | None] = field(default_factory=dict)
    #: when each account's last read ended, good or failed (``last_sync_attempt_at``): a
    #: priority read asked before it has been answered
    answered: dict[int, datetime | None] = field(default_factory=dict)
    #: accounts with a liquidation episode running: its own re-check reads them
    liquidating: set[int] = field(default_factory=set)

    def symbols_wanted(self) -> set[str]:
        """The held symbols, and every pair that could convert a held symbol's profit
        currency into an account's deposit currency (directly or through USD: the pairs
        ``risk.mtm`` looks for). A pair the broker does not offer is simply not quoted."""
        wanted = {p.symbol for p in self.positions}
        servers = {a.account_id: (a.server, a.currency) for a in self.accounts}
        for p in self.positions:
            server, deposit = servers[p.account_id]
            spec = self.terms.get((server, p.symbol))
            if spec is None or spec.currency_profit == deposit:
                continue
            profit = spec.currency_profit
            wanted |= {deposit + profit, profit + deposit}
            if VIA not in (profit, deposit):
                wanted |= {profit + VIA, VIA + profit, VIA + deposit, deposit + VIA}
        return wanted


def mark_inputs_load() -> MarkInputs:
    """Every active account holding an open position, with what ``risk.mtm`` needs (see
    the module docstring: at most 10 queries, whatever the number of accounts; the
    accounts are selected by a subquery, never by a list of ids, so a pass over thousands
    sends no parameter per account). Accounts with no figures yet (never read) are left
    out: there is nothing to estimate from."""
    inputs = MarkInputs()
    held = TradingAccount.objects.filter(
        is_active=True, balance__isnull=False, positions__status=Position.Status.OPEN,
    ).values_list("pk", flat=True).distinct()
    for row in TradingAccount.objects.filter(pk__in=held).values(
            "id", "server", "currency", "balance", "credit", "peak_equity", "terminal_id",
            "last_sync_attempt_at"):
        inputs.accounts.append(AccountFigures(
            account_id=row["id"], server=row["server"], currency=row["currency"],
            balance=row["balance"], credit=row["credit"] or Decimal(0),
            peak_equity=row["peak_equity"]))
        inputs.terminals[row["id"]] = row["terminal_id"]
        inputs.answered[row["id"]] = row["last_sync_attempt_at"]
    if not inputs.accounts:
        return inputs
    rows = Position.objects.filter(status=Position.Status.OPEN, account__is_active=True,
                                   account__balance__isnull=False).values_list(
        "account_id", "ticket", "symbol", "side", "volume", "price_open", "swap")
    inputs.positions = [HeldPosition(a, t, s, Side(side), v, o, w or Decimal(0))
                        for a, t, s, side, v, o, w in rows if a in inputs.terminals]
    servers = {a.server for a in inputs.accounts}
    symbols = {p.symbol for p in inputs.positions}
    for spec in Instrument.objects.filter(server__in=servers, symbol__in=symbols):
        inputs.terms[(spec.server, spec.symbol)] = SymbolTerms(
            contract_size=spec.contract_size, currency_profit=spec.currency_profit)
    inputs.thresholds = {a: e.thresholds for a, e in effective_settings(held).items()
                         if a in inputs.terminals}
    # the queries are not one snapshot: an account whose last position closed (or whose
    # first opened) between them is left for the next pass, whole
    inputs.accounts = [a for a in inputs.accounts if a.account_id in inputs.thresholds]
    inputs.positions = [p for p in inputs.positions if p.account_id in inputs.thresholds]
    inputs.requested = dict(AccountMark.objects.filter(account_id__in=held).values_list(
        "account_id", "read_requested_at"))
    inputs.liquidating = set(LiquidationEpisode.objects.filter(
        status__in=RUNNING_EPISODE).values_list("account_id", flat=True))
    return inputs


@dataclass(frozen=True, slots=True)
class MarkPass:
    """One pass: estimates by account, and the accounts to read now grouped by terminal
    (None: the default terminal), most urgent first."""

    estimates: dict[int, EquityEstimate]
    priority: dict[int | None, list[int]]
    requested: dict[int, datetime | None] = field(default_factory=dict)


URGENCY = {Estimate.CRITICAL: 0, Estimate.NEAR_CRITICAL: 1, Estimate.WARNING: 2}
RUNNING_EPISODE = (LiquidationEpisode.Status.WARNING, LiquidationEpisode.Status.LIQUIDATING)


def may_ask(*, requested: datetime | None, answered: datetime | None, now: datetime,
            repeat_seconds: float, answer_seconds: float) -> bool:
    """Whether an account may be asked for a priority read now: never asked; or its last
    ask was answered (a read of it ended since, good or failed) at least
    ``repeat_seconds`` ago; or that ask is older than ``answer_seconds`` (lost: its task
    expired or died). An ask still waiting for its answer is never repeated: a second
    priority read would take the first one's lease and both would write nothing, which at
    a mass gap kept every crossing account unread (``bench/guard_bench.py``)."""
    if requested is None or requested <= now - timedelta(seconds=answer_seconds):
        return True
    return (answered is not None and answered >= requested
            and requested <= now - timedelta(seconds=repeat_seconds))


def marks_apply(*, inputs: MarkInputs, quotes: Mapping[str, Quote], now: datetime,
                near_critical_points: Decimal, repeat_seconds: float,
                answer_seconds: float, batch: int) -> MarkPass:
    """Estimate every account of ``inputs`` at ``quotes`` (by symbol); returns the
    estimates with the priority reads to queue (see the module docstring): the accounts
    ``may_ask`` allows, most urgent first, at most ``batch`` per terminal (the rest are
    asked at the next pass; a small batch is written, and guarded, sooner). Writes
    nothing: the caller queues the reads first, then ``marks_store``. An unknown estimate
    (a quote or spec missing) never asks for a read."""
    by_thresholds: dict[DrawdownThresholds, list[AccountFigures]] = defaultdict(list)
    for account in inputs.accounts:
        by_thresholds[inputs.thresholds[account.account_id]].append(account)
    estimates: dict[int, EquityEstimate] = {}
    for thresholds, accounts in by_thresholds.items():
        estimates.update(equity_estimates(
            accounts=accounts, positions=inputs.positions, quotes=quotes, terms=inputs.terms,
            thresholds=thresholds, near_critical_points=near_critical_points))
    urgent = sorted((e for e in estimates.values() if e.estimate.needs_priority_read
                     and e.account_id not in inputs.liquidating
                     and may_ask(requested=inputs.requested.get(e.account_id),
                                 answered=inputs.answered.get(e.account_id), now=now,
                                 repeat_seconds=repeat_seconds,
                                 answer_seconds=answer_seconds)),
                    key=lambda e: (URGENCY[e.estimate], e.account_id))
    priority: dict[int | None, list[int]] = defaultdict(list)
    for estimate in urgent:
        ids = priority[inputs.terminals[estimate.account_id]]
        if len(ids) < batch:
            ids.append(estimate.account_id)
    return MarkPass(estimates=estimates, priority=dict(priority),
                    requested=inputs.requested)


def marks_store(*, marks: MarkPass, now: datetime) -> None:
    """Store a pass's estimates in one upsert (``AccountMark``; an unknown estimate is
    not stored), stamping ``read_requested_at`` on the accounts it asked to read."""
    urgent = {a for ids in marks.priority.values() for a in ids}
    requested, estimates = marks.requested, marks.estimates.values()
    standings: dict[str, int] = defaultdict(int)
    for estimate in estimates:
        standings[estimate.estimate.value] += 1
    for standing, count in standings.items():
        metrics.estimates_total.labels(standing=standing).inc(count)
    rows = [AccountMark(account_id=e.account_id, equity=e.equity,
                        drawdown_percent=e.drawdown_percent, standing=e.estimate.value,
                        estimated_at=now, compared_at=None,
                        read_requested_at=now if e.account_id in urgent
                        else requested.get(e.account_id))
            for e in estimates if e.equity is not None]
    if rows:
        AccountMark.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["account"],
            update_fields=["equity", "drawdown_percent", "standing", "estimated_at",
                           "read_requested_at", "compared_at"])


def estimate_errors_observe(*, account_ids: list[int]) -> int:
    """Compare each stored estimate of ``account_ids`` made before their latest good read
    with that read's equity, into ``guard_estimate_error_percent`` (percent of the read
    equity, signed: ``risk.mtm.estimate_error_percent``), once per estimate. One query,
    plus one UPDATE when there is something to compare. Returns how many."""
    marks = list(AccountMark.objects.filter(
        account_id__in=account_ids, compared_at__isnull=True,
        account__last_synced_at__gt=F("estimated_at"), account__equity__isnull=False,
    ).filter(~Q(standing=Estimate.UNKNOWN.value)).values_list("account_id", "equity",
                                                               "account__equity"))
    for _, estimated, read in marks:
        error = estimate_error_percent(estimated_equity=estimated, read_equity=read)
        if error is not None:
            metrics.estimate_error_percent.observe(float(error))
    if marks:
        AccountMark.objects.filter(account_id__in=[m[0] for m in marks]).update(
            compared_at=timezone.now())
    return len(marks)


def stored_quotes(*, symbols: Iterable[str], since: datetime) -> dict[str, Quote]:
    """The newest stored price of each of ``symbols`` among open positions read (pulled
    or pushed by an EA) since ``since``, as a quote with bid = ask = that price: the
    fallback for a symbol no terminal quoted. One query."""
    rows = (Position.objects.filter(status=Position.Status.OPEN, symbol__in=list(symbols),
                                    last_synced_at__gte=since, price_current__isnull=False)
            .order_by("symbol", "-last_synced_at")
            .values_list("symbol", "price_current", "last_synced_at"))
    quotes: dict[str, Quote] = {}
    for symbol, price, at in rows:
        if symbol not in quotes and price > 0:
            quotes[symbol] = Quote(symbol=symbol, bid=price, ask=price, time=at)
    return quotes
