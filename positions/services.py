"""Sync: pipeline steps 1–2 of DESIGN.md, for a batch of accounts at a time.

``accounts_sync`` is the whole cycle: take a lease on the accounts, fetch each one through
its gateway (network, no transaction open), then write every result in one transaction with
a constant number of queries per batch (``sync_results_apply``).

Safety rules:

- A failed read (``BrokerError``) writes *nothing* about positions: the account keeps its
  last good figures and positions and is marked stale (or error, when a person must act).
- A position is closed only when a successful ``positions()`` read no longer lists it; its
  realized P&L is the sum of its deals' net profit (MetaTrader 5: a position's deals share
  ``position_id``), in the account currency.
- Only the holder of an account's lease writes its results; a duplicated task, a second
  worker or an expired lease writes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import zip_longest

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.crypto import CredentialsUnreadable
from accounts.models import BaselineReset, TradingAccount
from accounts.terminals import TerminalBusy, terminal_session
from brokers.errors import BridgeRefused, BrokerError, BrokerTimeout, BrokerUnavailable
from brokers.gateway import (
    OPENED_AT_UNKNOWN,
    AccountState,
    BrokerGateway,
    BrokerPosition,
    Deal,
    SymbolSpec,
)
from config.events import alert_raise
from positions import metrics, plausibility, pnl
from positions.models import BeatLease, CashFlow, EquitySnapshot, Instrument, Position, SyncLog

logger = logging.getLogger(__name__)

LEASE_SECONDS = 120
DISPATCH_EXPIRY = timedelta(seconds=60)  # the accounts_sync task's own expiry
MAX_BACKOFF_SECONDS = 300
#: A batch stops reading after this long and writes what it has: well inside the sync
#: task's 60 s soft time limit, even when the terminal hangs (each call then waits 12 s).
BATCH_FETCH_DEADLINE_SECONDS = 30.0
TIMEOUTS_BEFORE_GIVING_UP = 2  # timeouts in a row: the terminal is hung, stop asking it
STALE_AFTER_CADENCES = 3  # a last good read older than 3 cadences: the figures are stale
DEAL_LOOKBACK = timedelta(minutes=1)
#: The first read of an account asks for its whole history (MetaTrader 5 began in 2010).
HISTORY_START = datetime(2000, 1, 1, tzinfo=UTC)

Status = TradingAccount.SyncStatus


@dataclass(frozen=True, slots=True)
class AccountFetch:
    """What one account's gateway answered in one cycle (or why it could not)."""

    account_id: int
    started_at: datetime
    duration_ms: int
    state: AccountState | None = None
    positions: tuple[BrokerPosition, ...] | None = None
    deals: tuple[Deal, ...] = ()
    specs: tuple[SymbolSpec, ...] = ()
    error_code: str = ""
    error_message: str = ""
    needs_person: bool = False

    @property
    def ok(self) -> bool:
        return self.state is not None and self.positions is not None


@dataclass(slots=True)
class SyncOutcome:
    synced: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # lease held elsewhere
    #: (server, symbol) whose specification read now differs from the stored one: the
    #: caller drops caches of it once the batch is committed (risk.symbols)
    specs_changed: list[tuple[str, str]] = field(default_factory=list)


# --- lease: one syncer per account at a time ---
def sync_lease_acquire(*, account_ids: Iterable[int], seconds: int = LEASE_SECONDS,
                       take_over: bool = False) -> tuple[uuid.UUID, list[int]]:
    """Lease the free ones of ``account_ids``; return (token, leased ids).

    One conditional UPDATE: on PostgreSQL a concurrent UPDATE of the same row waits, then
    re-checks the WHERE and finds the lease taken (the race two workers would otherwise
    win together); SQLite serialises writers. ``take_over`` (a priority read): take the
    leases even when held, e.g. by a routine batch still waiting for its terminal; that
    batch then writes nothing for these accounts (``sync_results_apply`` writes only
    under its own token), so one writer per account still holds.
    """
    token = uuid.uuid4()
    now = timezone.now()
    ids = list(account_ids)
    free = Q() if take_over else Q(sync_lease_until__isnull=True) | Q(sync_lease_until__lt=now)
    TradingAccount.objects.filter(id__in=ids, is_active=True).filter(free).update(
        sync_lease_token=token, sync_lease_until=now + timedelta(seconds=seconds))
    leased = list(
        TradingAccount.objects.filter(id__in=ids, sync_lease_token=token)
        .values_list("id", flat=True)
    )
    return token, leased


def sync_lease_release(*, token: uuid.UUID) -> None:
    TradingAccount.objects.filter(sync_lease_token=token).update(
        sync_lease_token=None, sync_lease_until=None
    )


# --- fetch (network, no transaction) ---
@dataclass(frozen=True, slots=True)
class Known:
    """A position we believe open (or closed without its closing deal yet)."""

    opened_at: datetime
    volume: Decimal
    open: bool


def _pending_positions(account_ids: list[int]) -> dict[int, dict[int, Known]]:
    """Tickets we believe open (or closed without a closing deal yet), per account."""
    pending: dict[int, dict[int, Known]] = {a: {} for a in account_ids}
    rows = Position.objects.filter(account_id__in=account_ids).filter(
        Q(status=Position.Status.OPEN) | Q(close_reason=Position.CloseReason.UNKNOWN)
    ).values_list("account_id", "ticket", "opened_at", "volume", "status")
    for account_id, ticket, opened_at, volume, status in rows:
        pending[account_id][ticket] = Known(opened_at, volume, status == Position.Status.OPEN)
    return pending


def _history_needed(account: TradingAccount, state: AccountState,
                    positions: tuple[BrokerPosition, ...], pending: dict[int, Known]) -> bool:
    """Whether this read must look at the deal history for balance operations.

    Every balance operation changes the balance or the credit. A read where both are what
    we stored and no trade happened (no position opened, closed or partly closed: the
    tickets and volumes are the ones we hold) cannot hold a cash flow with a net amount,
    so it skips the history call: the steady state costs no extra round trip. Any trade
    event reads it, because a realized P&L could mask a deposit of the same size. The
    first read always does. Two operations that cancel out are recorded at the next read
    of the history; their net moves nothing either way.
    """
    if account.deal_cursor_at is None or account.balance is None:
        return True
    if state.balance != account.balance or state.credit != (account.credit or Decimal(0)):
        return True
    held = {ticket: known.volume for ticket, known in pending.items() if known.open}
    return held != {p.ticket: p.volume for p in positions} or len(held) != len(pending)


def _consistent_read(gateway: BrokerGateway, *, identity: bool = True
                     ) -> tuple[AccountState, tuple[BrokerPosition, ...]]:
    """The account, then its positions (always in that order); read both again, once, when
    equity ≠ balance + credit + Σ(profit + swap) beyond cent rounding (a tick moved between
    the two calls), and keep the pair that adds up better. ``identity`` False (a broker
    outside ``plausibility.IDENTITY_BROKERS``): one read of each, never re-read. Raises
    BrokerError."""
    state = gateway.account_state()
    positions = tuple(gateway.positions())
    if not identity:
        return state, positions
    residual = abs(plausibility.identity_residual(state=state, positions=positions))
    if residual > plausibility.read_tolerance(positions=len(positions)):
        metrics.account_reread_total.inc()
        again = gateway.account_state()
        again_positions = tuple(gateway.positions())
        if abs(plausibility.identity_residual(state=again, positions=again_positions)
               ) < residual:
            return again, again_positions
    return state, positions


def account_fetch(*, account: TradingAccount, gateway: BrokerGateway,
                  pending: dict[int, Known], known_symbols: set[str]) -> AccountFetch:
    """Read one account: state, positions, the deal history since the last read, new symbols.

    The deal history is read from the newest deal seen (``deal_cursor_at``) or, on the
    first read, from ``HISTORY_START``, whenever the read could hold a balance operation
    (``_history_needed``): it carries the deposits, withdrawals and credit that move the
    high-water mark, and the closing deals of positions that vanished. Never raises a
    BrokerError: a failure comes back as an AccountFetch with its code.
    """
    started_at = timezone.now()
    t0 = time.perf_counter()
    try:
        state, positions = _consistent_read(
            gateway, identity=account.broker in plausibility.IDENTITY_BROKERS)
        listed = {p.ticket for p in positions}
        deals: tuple[Deal, ...] = ()
        if _history_needed(account, state, positions, pending):
            since = (account.deal_cursor_at - DEAL_LOOKBACK if account.deal_cursor_at
                     else HISTORY_START)
            vanished = [k.opened_at for t, k in pending.items() if t not in listed]
            if vanished:
                since = min(since, min(vanished) - DEAL_LOOKBACK)
            deals = tuple(gateway.deals(since=since))
        specs = tuple(gateway.symbol_spec(s) for s in {p.symbol for p in positions}
                      if s not in known_symbols)
    except (BrokerError, CredentialsUnreadable) as exc:
        duration_ms = int((time.perf_counter() - t0) * 1000)
        metrics.positions_fetch_duration.labels(result="error").observe(duration_ms / 1000)
        return AccountFetch(
            account_id=account.pk, started_at=started_at, duration_ms=duration_ms,
            error_code=exc.code, error_message=str(exc)[:2000],
            needs_person=not isinstance(exc, BrokerUnavailable),
        )
    duration_ms = int((time.perf_counter() - t0) * 1000)
    metrics.positions_fetch_duration.labels(result="ok").observe(duration_ms / 1000)
    return AccountFetch(account_id=account.pk, started_at=started_at, duration_ms=duration_ms,
                        state=state, positions=positions, deals=deals, specs=specs)


# --- apply (one transaction, constant queries per batch) ---
def _figures(account: TradingAccount, open_positions: int) -> dict[str, str | int | None]:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "balance": text(account.balance), "equity": text(account.equity),
        "margin": text(account.margin), "free_margin": text(account.free_margin),
        "margin_level": text(account.margin_level), "profit": text(account.profit),
        "open_positions": open_positions,
    }


def _position_row(account_id: int, p: BrokerPosition, now: datetime) -> Position:
    return Position(
        account_id=account_id, ticket=p.ticket, identifier=p.position_id, symbol=p.symbol,
        side=p.side.value,
        volume=p.volume, price_open=p.price_open, price_current=p.price_current, sl=p.sl,
        tp=p.tp, swap=p.swap, profit=p.profit, magic=p.magic, comment=p.comment[:64],
        opened_at=p.opened_at, status=Position.Status.OPEN, closed_at=None, close_price=None,
        close_reason="", realized_pnl=None, last_synced_at=now,
    )


def _close(position: Position, deals: list[Deal], now: datetime) -> Position:
    """Mark a vanished position closed, from its deals (``pnl.position_closing``)."""
    position.status = Position.Status.CLOSED
    position.last_synced_at = now
    closing = pnl.position_closing(deals)
    if closing is None:
        # Gone from the terminal but no closing deal in history yet: closed, reason unknown;
        # a later cycle fills it in when the deal shows up.
        position.closed_at = position.closed_at or now
        position.close_reason = Position.CloseReason.UNKNOWN
        return position
    position.closed_at = closing.closed_at
    position.close_price = closing.close_price
    position.close_reason = closing.close_reason
    position.realized_pnl = closing.realized_pnl
    return position


POSITION_UPSERT_FIELDS = [
    "identifier", "symbol", "side", "volume", "price_open", "price_current", "sl", "tp",
    "swap", "profit", "magic", "comment", "opened_at", "status", "closed_at", "close_price",
    "close_reason", "realized_pnl", "last_synced_at",
]
POSITION_CLOSE_FIELDS = ["status", "closed_at", "close_price", "close_reason", "realized_pnl",
                         "last_synced_at"]
ACCOUNT_FIELDS = [
    "currency", "leverage", "balance", "credit", "equity", "margin", "free_margin",
    "margin_level", "profit", "peak_equity", "drawdown_percent", "baseline_started_at",
    "baseline_reset_requested", "cash_flow_total", "deal_cursor_at", "sync_status",
    "sync_error_code", "sync_error_message", "last_synced_at", "last_sync_attempt_at",
    "consecutive_failures", "next_sync_at", "sync_lease_until", "sync_lease_token",
]


def _backoff(cadence: int, failures: int) -> int:
    return min(cadence * 2 ** min(max(failures - 1, 0), 6), MAX_BACKOFF_SECONDS)


@dataclass(slots=True)
class _Writes:
    """What one batch writes, gathered before the statements go out."""

    upserts: list[Position] = field(default_factory=list)
    closes: list[Position] = field(default_factory=list)
    retickets: list[tuple[int, int]] = field(default_factory=list)  # (position pk, ticket)
    snapshots: list[EquitySnapshot] = field(default_factory=list)
    logs: list[SyncLog] = field(default_factory=list)
    cash_flows: list[CashFlow] = field(default_factory=list)
    baseline_resets: list[BaselineReset] = field(default_factory=list)
    changes: list[tuple[TradingAccount, str, str]] = field(default_factory=list)  # alerts
    specs: dict[tuple[str, str], SymbolSpec] = field(default_factory=dict)


def _cash_flows_seen(fetches: list[AccountFetch], ok_ids: list[int]) -> set[tuple[int, int]]:
    """(account, deal ticket) of the balance operations in ``fetches`` already counted."""
    tickets = {d.ticket for f in fetches for d in f.deals if d.kind.is_cash_flow}
    if not tickets:
        return set()
    return set(CashFlow.objects.filter(account_id__in=ok_ids, ticket__in=tickets)
               .values_list("account_id", "ticket"))


def _positions_apply(*, account: TradingAccount, fetch: AccountFetch,
                     known: dict[int, Position], writes: _Writes, now: datetime) -> int:
    """Upsert the listed positions, close the vanished ones from their deals (joined on the
    position identifier, which survives a re-ticket), re-ticket the ones the server re-opened.
    Returns the number closed now."""
    assert fetch.positions is not None
    rows = [_position_row(account.pk, p, now) for p in fetch.positions]
    for row in rows:
        stored = known.get(row.ticket)
        if row.opened_at == OPENED_AT_UNKNOWN and stored is not None:
            # the broker forgot when it opened (IB: beyond its execution history): keep ours
            row.opened_at = stored.opened_at
    writes.upserts.extend(rows)
    listed = {p.ticket for p in fetch.positions}
    by_identifier = {p.position_id: p.ticket for p in fetch.positions}
    deals_by_position: dict[int, list[Deal]] = {}
    for deal in fetch.deals:
        deals_by_position.setdefault(deal.position_id, []).append(deal)
    closed_now = 0
    for ticket, position in known.items():
        if ticket in listed:
            continue
        identifier = position.identifier or ticket
        if identifier in by_identifier:
            writes.retickets.append((position.pk, by_identifier[identifier]))
            continue
        was_open = position.status == Position.Status.OPEN
        writes.closes.append(_close(position, deals_by_position.get(identifier, []), now))
        closed_now += was_open
    return closed_now


def _cash_flow_apply(*, account: TradingAccount, fetch: AccountFetch,
                     seen: set[tuple[int, int]], writes: _Writes, now: datetime) -> Decimal:
    """Record the balance operations not seen before; return their net amount (account
    currency) that moves the high-water mark. The first history read of an account records
    what it finds as the baseline: money that came in before the first peak moves nothing."""
    baseline = account.deal_cursor_at is None
    net = Decimal(0)
    for deal in fetch.deals:
        if not deal.kind.is_cash_flow or (account.pk, deal.ticket) in seen:
            continue
        seen.add((account.pk, deal.ticket))
        writes.cash_flows.append(CashFlow(
            account=account, ticket=deal.ticket, kind=deal.kind.value, amount=deal.cash_flow,
            comment=deal.comment[:64], time=deal.time, baseline=baseline, recorded_at=now))
        if not baseline:
            net += deal.cash_flow
    if fetch.deals:
        newest = max(d.time for d in fetch.deals)
        account.deal_cursor_at = max(newest, account.deal_cursor_at or newest)
    elif account.deal_cursor_at is None:
        account.deal_cursor_at = HISTORY_START  # an empty history: from here on, cash moves
    account.cash_flow_total = (account.cash_flow_total or Decimal(0)) + net
    return net


def _good_read(*, account: TradingAccount, fetch: AccountFetch, known: dict[int, Position],
               before: dict, seen_cash: set[tuple[int, int]], writes: _Writes,
               now: datetime) -> None:
    """Apply one successful read to ``account`` (in memory) and gather its rows."""
    assert fetch.state is not None and fetch.positions is not None
    opened = sum(1 for p in fetch.positions if p.ticket not in known)
    closed_now = _positions_apply(account=account, fetch=fetch, known=known, writes=writes,
                                  now=now)
    for spec in fetch.specs:
        writes.specs[(fetch.state.server, spec.symbol)] = spec
    cash_flow = _cash_flow_apply(account=account, fetch=fetch, seen=seen_cash, writes=writes,
                                 now=now)
    state = fetch.state
    peak = pnl.peak_after_cash_flow(previous_peak=account.peak_equity, cash_flow=cash_flow,
                                    equity=state.equity)
    if account.peak_equity is None:
        account.baseline_started_at = now
    if account.baseline_reset_requested:
        # A liquidation completed: the high-water mark restarts at the flat equity, or every
        # new position would be critical at once against the old peak.
        writes.baseline_resets.append(BaselineReset(
            account=account, previous_peak=peak, new_peak=state.equity, changed_at=now,
            reason="liquidation completed: baseline restarts at the equity once flat"))
        peak = state.equity
        account.baseline_reset_requested = False
        account.baseline_started_at = now
    drawdown = pnl.drawdown_percent(peak_equity=peak, equity=state.equity)
    residual = None  # the identity does not hold for every broker (IDENTITY_BROKERS)
    if account.broker in plausibility.IDENTITY_BROKERS:
        residual = plausibility.identity_residual(state=state, positions=fetch.positions)
        metrics.account_identity_residual.observe(float(abs(residual)))
    account.currency = state.currency
    account.leverage = state.leverage
    account.balance = state.balance
    account.credit = state.credit
    account.equity = state.equity
    account.margin = state.margin
    account.free_margin = state.free_margin
    account.margin_level = state.margin_level
    account.profit = state.profit
    account.peak_equity = peak
    account.drawdown_percent = drawdown
    account.sync_status = Status.HEALTHY
    account.sync_error_code = ""
    account.sync_error_message = ""
    account.last_synced_at = now
    account.consecutive_failures = 0
    account.next_sync_at = now + timedelta(seconds=account.sync_cadence_seconds)
    writes.snapshots.append(EquitySnapshot(
        account=account, taken_at=now, balance=state.balance, equity=state.equity,
        margin=state.margin, free_margin=state.free_margin,
        margin_level=state.margin_level, profit=state.profit, peak_equity=peak,
        drawdown_percent=drawdown, open_positions=len(fetch.positions), cash_flow=cash_flow,
        identity_residual=residual,
    ))
    writes.logs.append(SyncLog(
        account=account, started_at=fetch.started_at, duration_ms=fetch.duration_ms,
        result=SyncLog.Result.OK, before=before,
        after={**_figures(account, len(fetch.positions)), "cash_flow": str(cash_flow)},
        positions_opened=opened, positions_updated=len(fetch.positions) - opened,
        positions_closed=closed_now,
    ))


def _failed_read(account: TradingAccount, fetch: AccountFetch, before: dict,
                 writes: _Writes, now: datetime) -> None:
    """A read that failed: the account is "unknown". Its figures stay the last good ones,
    it turns stale (error when a person must act), and its next read backs off."""
    was = account.sync_status
    account.consecutive_failures += 1
    account.sync_status = Status.ERROR if fetch.needs_person else Status.STALE
    account.sync_error_code = fetch.error_code
    account.sync_error_message = fetch.error_message
    account.next_sync_at = now + timedelta(
        seconds=_backoff(account.sync_cadence_seconds, account.consecutive_failures))
    writes.logs.append(SyncLog(
        account=account, started_at=fetch.started_at, duration_ms=fetch.duration_ms,
        result=SyncLog.Result.FAILED, error_code=fetch.error_code,
        error_message=fetch.error_message, before=before, after=before,
    ))
    if was == Status.HEALTHY:
        writes.changes.append((account, "account_stale",
                               f"not readable ({fetch.error_code}): its figures are the "
                               "last good ones and the guards wait for a fresh read"))


def _writes_flush(writes: _Writes, accounts: dict[int, TradingAccount],
                  batch_size: int) -> list[tuple[str, str]]:
    """Write what a batch gathered: one statement per kind of row (per ``batch_size``).
    Returns the (server, symbol) whose stored specification changed."""
    for position_pk, ticket in writes.retickets:
        # rare: the server re-opened a position under a new ticket (same identifier)
        Position.objects.filter(pk=position_pk).update(ticket=ticket)
    if writes.cash_flows:
        CashFlow.objects.bulk_create(writes.cash_flows, batch_size=batch_size)
    if writes.baseline_resets:
        BaselineReset.objects.bulk_create(writes.baseline_resets)
    if writes.upserts:
        Position.objects.bulk_create(
            writes.upserts, batch_size=batch_size * 10, update_conflicts=True,
            unique_fields=["account", "ticket"], update_fields=POSITION_UPSERT_FIELDS,
        )
    if writes.closes:
        Position.objects.bulk_create(
            writes.closes, batch_size=batch_size, update_conflicts=True, unique_fields=["id"],
            update_fields=POSITION_CLOSE_FIELDS,
        )
    if writes.snapshots:
        EquitySnapshot.objects.bulk_create(writes.snapshots, batch_size=batch_size)
    if writes.logs:
        SyncLog.objects.bulk_create(writes.logs, batch_size=batch_size)
    if accounts:
        # An upsert on the primary key of rows we hold locked: one INSERT … ON CONFLICT
        # (id) DO UPDATE, where bulk_update would send a CASE per column per row.
        TradingAccount.objects.bulk_create(
            accounts.values(), batch_size=batch_size, update_conflicts=True,
            unique_fields=["id"], update_fields=ACCOUNT_FIELDS,
        )
    changed = _instruments_upsert(writes.specs) if writes.specs else []
    if writes.changes:
        _sync_status_alerts(writes.changes)
    return changed


def _known_positions(ok_ids: list[int]) -> dict[int, dict[int, Position]]:
    """Per account, ticket → its open positions and those closed without their deal yet."""
    existing: dict[int, dict[int, Position]] = {}
    for p in Position.objects.filter(account_id__in=ok_ids).filter(
        Q(status=Position.Status.OPEN) | Q(close_reason=Position.CloseReason.UNKNOWN)
    ):
        existing.setdefault(p.account_id, {})[p.ticket] = p
    return existing


def sync_results_apply(*, fetches: list[AccountFetch], token: uuid.UUID,
                       batch_size: int = 1000) -> SyncOutcome:
    """Write a batch of fetch results in one transaction. Returns who was synced.

    Queries: 1 (lease check and account rows) + 1 (pending positions) + 1 upsert + 1
    close update + 1 snapshot insert + 1 log insert + 1 account update + 1 instrument
    upsert when new symbols appeared, per ``batch_size`` accounts, whatever the batch holds.
    """
    outcome = SyncOutcome()
    if not fetches:
        return outcome
    now = timezone.now()
    with transaction.atomic():
        # Only the lease holder writes: a duplicated task whose lease was taken over stops
        # here, so two syncers never interleave their writes on one account.
        accounts = {
            a.pk: a for a in TradingAccount.objects.select_for_update()
            .filter(id__in=[f.account_id for f in fetches], sync_lease_token=token)
        }
        ok_ids = [f.account_id for f in fetches if f.ok and f.account_id in accounts]
        existing = _known_positions(ok_ids)
        seen_cash = _cash_flows_seen(fetches, ok_ids)
        writes = _Writes()
        for fetch in fetches:
            account = accounts.get(fetch.account_id)
            if account is None:
                outcome.skipped.append(fetch.account_id)
                continue
            known = existing.get(account.pk, {})
            before = _figures(account, sum(p.status == Position.Status.OPEN
                                           for p in known.values()))
            account.last_sync_attempt_at = now
            account.sync_lease_until = None
            account.sync_lease_token = None
            if not fetch.ok:
                outcome.failed.append(account.pk)
                _failed_read(account, fetch, before, writes, now)
                continue
            if account.sync_status in (Status.STALE, Status.ERROR):
                writes.changes.append((account, "account_recovered", "readable again"))
            outcome.synced.append(account.pk)
            _good_read(account=account, fetch=fetch, known=known, before=before,
                       seen_cash=seen_cash, writes=writes, now=now)
        outcome.specs_changed = _writes_flush(writes, accounts, batch_size)

    metrics.position_sync_total.labels(result="ok").inc(len(outcome.synced))
    metrics.position_sync_total.labels(result="failed").inc(len(outcome.failed))
    metrics.positions_fetched_total.labels(source="broker").inc(
        sum(len(f.positions or ()) for f in fetches if f.account_id in outcome.synced)
    )
    return outcome


def _sync_status_alerts(changes: list[tuple[TradingAccount, str, str]]) -> None:
    """An account turning stale (or error) and recovering goes to its member's outbox in
    the sync's own transaction. Rare: one user query per change."""
    for account, kind, text in changes:
        alert_raise(user=account.user, account=account, kind=kind,
                    text=f"{account.login}@{account.server}: {text}",
                    payload={"sync_status": account.sync_status,
                               "error_code": account.sync_error_code})


SPEC_FIELDS = ["digits", "point", "contract_size", "tick_size", "volume_min", "volume_step",
               "volume_max", "currency_base", "currency_profit", "currency_margin",
               "filling_modes", "calc_mode"]
#: a stored specification older than this is read again with the account's next read, so a
#: broker's change (contract size, volume limits) is noticed
SPEC_REFRESH = timedelta(hours=1)


def _instruments_upsert(specs: dict[tuple[str, str], SymbolSpec]) -> list[tuple[str, str]]:
    """Store the specifications read; return the (server, symbol) whose stored row differed
    (a row seen for the first time is not a change). One query for the stored rows, one
    upsert."""
    stored = {(i.server, i.symbol): i for i in Instrument.objects.filter(
        server__in={k[0] for k in specs}, symbol__in={k[1] for k in specs})}
    rows = [
        Instrument(
            server=server, symbol=s.symbol, digits=s.digits, point=s.point,
            contract_size=s.contract_size, tick_size=s.tick_size, volume_min=s.volume_min,
            volume_step=s.volume_step, volume_max=s.volume_max, currency_base=s.currency_base,
            currency_profit=s.currency_profit, currency_margin=s.currency_margin,
            filling_modes=",".join(sorted(s.filling_modes)), calc_mode=s.calc_mode,
        )
        for (server, _), s in specs.items()
    ]
    changed = [(row.server, row.symbol) for row in rows
               if (old := stored.get((row.server, row.symbol))) is not None
               and any(getattr(old, f) != getattr(row, f) for f in SPEC_FIELDS)]
    Instrument.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["server", "symbol"],
        update_fields=[*SPEC_FIELDS, "updated_at"],
    )
    return changed


GatewayFactory = Callable[[TradingAccount], BrokerGateway]


def _not_read(account: TradingAccount, code: str, message: str) -> AccountFetch:
    return AccountFetch(account_id=account.pk, started_at=timezone.now(), duration_ms=0,
                        error_code=code, error_message=message)


def _terminal_health(fetch: AccountFetch) -> bool | None:
    """What a read says of its terminal: True (it answered), False (unreachable, timed out,
    refused our token), None (the account's own fault: a wrong password, a bad symbol)."""
    if fetch.ok:
        return True
    if not fetch.needs_person or fetch.error_code == BridgeRefused.code:
        return False
    return None


def _fetch_one(account: TradingAccount, gateway_for: GatewayFactory,
               pending: dict[int, Known], known_symbols: set[str], deadline_at: float,
               priority: bool) -> AccountFetch:
    """One account's call sequence, holding its terminal's lease
    (``accounts.terminals.terminal_session``: one sequence per terminal across every worker;
    ``priority``: ahead of routine reads). A terminal busy until ``deadline_at``
    (monotonic seconds) is a failed read ("unknown")."""
    try:
        gateway = gateway_for(account)
    except CredentialsUnreadable as exc:
        return AccountFetch(account_id=account.pk, started_at=timezone.now(), duration_ms=0,
                            error_code=exc.code, error_message=str(exc), needs_person=True)
    try:
        with terminal_session(terminal_id=account.terminal_id, deadline=deadline_at,
                              priority=priority,
                              name=account.terminal.name if account.terminal else None
                              ) as session:
            fetch = account_fetch(account=account, gateway=gateway, pending=pending,
                                  known_symbols=known_symbols)
            session.ok = _terminal_health(fetch)
            session.error = fetch.error_code
    except TerminalBusy as exc:
        return _not_read(account, exc.code, f"not read: {exc}")
    return fetch


def _fetch_all(accounts: list[TradingAccount], gateway_for: GatewayFactory,
               pending: dict[int, dict[int, Known]], known: set[tuple[str, str]],
               deadline: float, priority: bool = False) -> list[AccountFetch]:
    """Read each account in turn, within ``deadline`` seconds in all, each call sequence
    holding its terminal's lease (``_fetch_one``).

    A hung terminal answers nothing: each call then waits for its own timeout. So the batch
    stops reading once ``deadline`` has passed, or after ``TIMEOUTS_BEFORE_GIVING_UP``
    timeouts in a row, and the accounts not read are recorded as failed reads ("unknown",
    their figures kept, stale): the batch writes what it has well inside the task's time
    limit instead of being killed with nothing written.
    """
    started = time.monotonic()
    fetches: list[AccountFetch] = []
    timeouts = 0
    for account in accounts:
        if time.monotonic() - started > deadline:
            fetches.append(_not_read(account, "batch_deadline",
                                     f"not read: the batch's {deadline:g} s were up"))
            continue
        if timeouts >= TIMEOUTS_BEFORE_GIVING_UP:
            fetches.append(_not_read(account, "terminal_unresponsive",
                                     "not read: the terminal timed out on the accounts "
                                     "before it in this batch"))
            continue
        fetch = _fetch_one(account, gateway_for, pending[account.pk],
                           {sym for srv, sym in known if srv == account.server},
                           started + deadline, priority)
        timeouts = timeouts + 1 if fetch.error_code == BrokerTimeout.code else 0
        fetches.append(fetch)
    return fetches


def accounts_sync(*, account_ids: list[int], gateway_for: GatewayFactory | None = None,
                  deadline: float = BATCH_FETCH_DEADLINE_SECONDS,
                  priority: bool = False) -> SyncOutcome:
    """Pipeline steps 1–2 for a batch of accounts: lease, fetch each (within ``deadline``
    seconds in all: ``_fetch_all``; ``priority``: each terminal serves these before routine
    reads), apply all, release. The steps after a good read are
    ``pipeline.services.after_read``'s (``pipeline.services.accounts_sync`` runs both).

    ``gateway_for`` defaults to ``accounts.gateways.account_gateway``. Safe to run twice
    at once: the second run finds the leases taken and syncs nothing.
    """
    if gateway_for is None:
        from accounts.gateways import account_gateway

        gateway_for = account_gateway
    token, leased = sync_lease_acquire(account_ids=account_ids, take_over=priority)
    if not leased:
        return SyncOutcome(skipped=list(account_ids))
    try:
        # by terminal, so one terminal's accounts follow each other
        accounts = sorted(TradingAccount.objects.filter(id__in=leased)
                          .select_related("terminal"),
                          key=lambda a: (a.terminal_id or 0, a.pk))
        pending = _pending_positions(leased)
        servers = {a.server for a in accounts}
        # a specification stored long ago counts as unknown: read again (SPEC_REFRESH)
        known = set(Instrument.objects.filter(
            server__in=servers, updated_at__gte=timezone.now() - SPEC_REFRESH,
        ).values_list("server", "symbol"))
        fetches = _fetch_all(accounts, gateway_for, pending, known, deadline, priority)
        outcome = sync_results_apply(fetches=fetches, token=token)
    finally:
        sync_lease_release(token=token)  # a no-op when apply already released them
    outcome.skipped.extend(a for a in account_ids if a not in leased)
    return outcome


# --- scheduling ---
def sync_dispatch(*, limit: int, batch_size: int,
                  enqueue: Callable[[list[int]], object]) -> int:
    """Pick the accounts whose ``next_sync_at`` is due and enqueue them in batches.

    Each batch holds accounts of one terminal (``TradingAccount.terminal``), so a batch
    waits only for its own terminal. ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL)
    lets two dispatchers run at once and split the due accounts instead of both taking
    them; each picked account's
    ``next_sync_at`` moves one cadence ahead in the same transaction, so a later tick does
    not pick it again while its sync is queued. Enqueueing waits for the commit.
    """
    now = timezone.now()
    with transaction.atomic():
        due = list(
            TradingAccount.objects.select_for_update(skip_locked=True)
            .filter(is_active=True, next_sync_at__lte=now)
            # an account a worker is syncing right now is not queued again behind itself
            .filter(Q(sync_lease_until__isnull=True) | Q(sync_lease_until__lt=now))
            # nor one whose queued sync has not started yet: when a cycle takes longer than
            # the cadence, the queue would otherwise grow without bound (after the task's
            # expiry it is queued again)
            .filter(Q(sync_dispatched_at__isnull=True)
                    | Q(last_sync_attempt_at__gte=F("sync_dispatched_at"))
                    | Q(sync_dispatched_at__lt=now - DISPATCH_EXPIRY))
            .order_by("next_sync_at")
            .values_list("id", "sync_cadence_seconds", "terminal_id")[:limit]
        )
        by_cadence: dict[int, list[int]] = {}
        by_terminal: dict[int | None, list[int]] = {}
        for account_id, cadence, terminal_id in due:
            by_cadence.setdefault(cadence, []).append(account_id)
            by_terminal.setdefault(terminal_id, []).append(account_id)
        for cadence, ids in by_cadence.items():
            TradingAccount.objects.filter(id__in=ids).update(
                next_sync_at=now + timedelta(seconds=cadence), sync_dispatched_at=now
            )
        # a batch never mixes terminals: one terminal's batch waits only for that terminal;
        # queued round-robin over the terminals, so the workers spread over them instead
        # of all waiting for the first one's lease
        per_terminal = [[ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
                        for ids in by_terminal.values()]
        batches = [b for row in zip_longest(*per_terminal) for b in row if b is not None]
        transaction.on_commit(lambda: [enqueue(batch) for batch in batches])
    return len(due)


def sync_mark_stale(*, cadences: int = STALE_AFTER_CADENCES,
                    now: datetime | None = None) -> int:
    """Healthy accounts whose last good read is older than ``cadences`` × their own
    cadence become stale, so a hung terminal shows within 30 s on the 10 s default, not
    after minutes. One UPDATE per distinct cadence (a handful). Returns how many."""
    now = now or timezone.now()
    marked = 0
    healthy = TradingAccount.objects.filter(sync_status=Status.HEALTHY)
    for cadence in set(healthy.values_list("sync_cadence_seconds", flat=True)):
        marked += healthy.filter(
            sync_cadence_seconds=cadence,
            last_synced_at__lt=now - timedelta(seconds=cadence * cadences),
        ).update(sync_status=Status.STALE)
    return marked


def sync_logs_prune(*, older_than: timedelta, batch_size: int = 5000) -> int:
    """Delete sync logs older than ``older_than``, ``batch_size`` rows per statement, so a
    big first run never holds one huge transaction or lock. Returns the rows deleted."""
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        ids = list(SyncLog.objects.filter(started_at__lt=cutoff)
                   .values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        count, _ = SyncLog.objects.filter(id__in=ids).delete()
        deleted += count


def _lease_wait() -> None:
    """A pause while another sync of the account holds its lease (tests replace it)."""
    time.sleep(0.1)


def positions_force_refresh(*, account: TradingAccount, min_interval: int,
                            wait_seconds: float) -> SyncOutcome:
    """Sync ``account`` through its gateway now, at most once per ``min_interval`` seconds,
    so that the figures answered were read after this call began.

    When a sync of the account is already running (its lease is held: a worker's batch, an
    EA push), its read may have started before the request; so this waits for it to finish,
    at most ``wait_seconds``, then syncs again. The limit is one atomic cache ``add`` per
    account (Redis in production), shared by all web processes.

    Raises ApplicationError 429 ``rate_limited`` with ``retry_after``; 503
    ``refresh_busy`` when the running sync outlasts ``wait_seconds``; 503
    ``refresh_failed`` when the broker could not be read (the stored figures are the last
    good ones, older than the request).
    """
    from rest_framework import status

    from config.errors import ApplicationError
    from config.ratelimit import once_per

    once_per(f"positions:force-refresh:{account.pk}", min_interval,
             message=f"This account was refreshed less than {min_interval} s ago.")
    deadline = time.monotonic() + wait_seconds
    while True:
        outcome = accounts_sync(account_ids=[account.pk])
        if account.pk not in outcome.skipped:
            break
        if time.monotonic() >= deadline:
            raise ApplicationError(
                "A sync of this account is still running; try again shortly.",
                code="refresh_busy", status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail={"waited_seconds": wait_seconds}, headers={"Retry-After": "1"})
        _lease_wait()
    if account.pk in outcome.failed:
        row = TradingAccount.objects.values("sync_error_code", "last_synced_at").get(
            pk=account.pk)
        raise ApplicationError(
            "The broker could not be read now; the stored figures are older than this "
            "request.", code="refresh_failed",
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"reason": row["sync_error_code"],
                    "last_synced_at": row["last_synced_at"].isoformat()
                    if row["last_synced_at"] else None})
    return outcome


# --- the one beat ---
def beat_lease_hold(*, holder: str, seconds: float, name: str = "beat") -> bool:
    """Take or renew the beat lease for ``holder``; False while another holder's lease has
    not expired. One conditional UPDATE decides it (two beats racing: the second's UPDATE
    matches no row once the first one's commit is visible); the row is created on first
    use, and a creation race ends in the unique constraint."""
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    taken = BeatLease.objects.filter(name=name).filter(
        Q(holder=holder) | Q(expires_at__lt=now)).update(holder=holder, expires_at=until)
    if taken:
        return True
    if BeatLease.objects.filter(name=name).exists():
        return False
    try:
        with transaction.atomic():
            BeatLease.objects.create(name=name, holder=holder, expires_at=until)
    except IntegrityError:
        return False
    return True


def beat_lease_release(*, holder: str, name: str = "beat") -> None:
    """Give the lease up at shutdown, so a restarted beat need not wait for it to expire."""
    BeatLease.objects.filter(name=name, holder=holder).delete()
