"""Reconciliation writes: register expected trades, and after every sync, match and log.

``accounts_reconcile`` is pipeline step 3. It is called only for accounts whose read
succeeded in this cycle: an account whose read failed is unknown, not flat, and gets no
divergence at all. It writes in one transaction with a constant number of queries for the
batch: a divergence is logged when it appears ("opened") and when it goes ("resolved");
a one-off event (closed externally, gap) is logged once ("occurred").
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import TradingAccount
from config.errors import ApplicationError
from config.events import alert_raise
from guards.services.platform import platform_is_active
from positions.models import Instrument, Position
from reconciliation import matching, metrics
from reconciliation.matching import Closed, Expected, Held, Tolerances
from reconciliation.models import ExpectedTrade, OpenDivergence, ReconciliationLog

LIVE = (ExpectedTrade.Status.PENDING, ExpectedTrade.Status.OPEN)


def tolerances(points: dict[str, Decimal] | None = None) -> Tolerances:
    return Tolerances(bot_magic=settings.BOT_MAGIC, points=points or {})


def expected_trade_register(*, account: TradingAccount, symbol: str, side: str,
                            volume: Decimal, requested_price: Decimal | None = None,
                            sl: Decimal | None = None, tp: Decimal | None = None,
                            magic: int | None = None, signal_ref: str = "",
                            approval_ref: str = "", entry_number: int = 1,
                            platform_checked: bool = False) -> ExpectedTrade:
    """Register what the bot is about to place; returns it with its comment ``tag``.

    Idempotent per (account, approval_ref, entry_number) when ``approval_ref`` is given: a
    retried registration returns the first row. The tag is ``bo-`` + 10 random base-32
    characters (13 characters, within MetaTrader 5's comment length).
    """
    if not platform_checked and not platform_is_active():
        raise ApplicationError("The platform is not active: no new expected trades.",
                               code="platform_not_active", status_code=409)
    fields = dict(symbol=symbol, side=side, volume=volume, requested_price=requested_price,
                  sl=sl, tp=tp, magic=settings.BOT_MAGIC if magic is None else magic,
                  signal_ref=signal_ref, entry_number=entry_number)
    if approval_ref:
        existing = ExpectedTrade.objects.filter(account=account, approval_ref=approval_ref,
                                                entry_number=entry_number).first()
        if existing is not None:
            return existing
    for _ in range(3):
        tag = matching.make_tag(secrets.token_hex(5))
        try:
            with transaction.atomic():
                return ExpectedTrade.objects.create(account=account, approval_ref=approval_ref,
                                                    tag=tag, **fields)
        except IntegrityError:
            if approval_ref and ExpectedTrade.objects.filter(
                    account=account, approval_ref=approval_ref,
                    entry_number=entry_number).exists():
                return ExpectedTrade.objects.get(account=account, approval_ref=approval_ref,
                                                 entry_number=entry_number)
            continue  # a tag collision: draw another
    raise RuntimeError("could not draw a unique tag")


def _expected(trade: ExpectedTrade) -> Expected:
    return Expected(
        id=trade.pk, symbol=trade.symbol, side=trade.side, volume=trade.volume,
        requested_price=trade.requested_price, sl=trade.sl, tp=trade.tp, magic=trade.magic,
        tag=trade.tag, status=trade.status, created_at=trade.created_at, ticket=trade.ticket,
    )


def _held(position: Position) -> Held:
    return Held(
        ticket=position.ticket, symbol=position.symbol, side=position.side,
        volume=position.volume, price_open=position.price_open, sl=position.sl,
        tp=position.tp, magic=position.magic, comment=position.comment,
        opened_at=position.opened_at,
    )


def _closed(position: Position) -> Closed:
    return Closed(
        ticket=position.ticket, symbol=position.symbol, side=position.side,
        reason=position.close_reason, close_price=position.close_price, sl=position.sl,
        closed_at=position.closed_at or timezone.now(),
    )


@dataclass(slots=True)
class ReconcileOutcome:
    opened: int = 0
    resolved: int = 0
    occurred: int = 0
    accounts: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Book:
    """Everything one reconcile batch reads, grouped per account (five queries), and what
    it will write."""

    trades: dict[int, list[ExpectedTrade]]
    held: dict[int, list[Position]]
    closed: dict[int, list[Position]]
    open_rows: dict[int, list[OpenDivergence]]
    server_of: dict[int, str]
    points: dict[tuple[str, str], Decimal]
    logs: list[ReconciliationLog] = field(default_factory=list)
    new_rows: list[OpenDivergence] = field(default_factory=list)
    gone_rows: list[int] = field(default_factory=list)
    changed_trades: list[ExpectedTrade] = field(default_factory=list)


def _book_read(account_ids: list[int]) -> _Book:
    # Lock the accounts' live trades: a concurrent registration or a second reconcile
    # of the same account waits instead of interleaving its writes.
    trades = list(ExpectedTrade.objects.select_for_update()
                  .filter(account_id__in=account_ids, status__in=LIVE))
    held = list(Position.objects.filter(account_id__in=account_ids,
                                        status=Position.Status.OPEN))
    tickets = [t.ticket for t in trades if t.ticket]
    closed = list(Position.objects.filter(account_id__in=account_ids, ticket__in=tickets,
                                          status=Position.Status.CLOSED))
    open_rows = list(OpenDivergence.objects.filter(account_id__in=account_ids))
    server_of = dict(TradingAccount.objects.filter(pk__in=account_ids)
                     .values_list("pk", "server"))
    points = {
        (server, symbol): point for server, symbol, point in Instrument.objects.filter(
            server__in=set(server_of.values())).values_list("server", "symbol", "point")
    }
    return _Book(trades=_group(trades), held=_group(held), closed=_group(closed),
                 open_rows=_group(open_rows), server_of=server_of, points=points)


def _trades_follow(book: _Book, result: matching.Result, mine: list[ExpectedTrade],
                   held: list[Position]) -> None:
    """Expected trades take the state the matching found: open (with the position's
    ticket, fill price and volume) or closed (with when and why)."""
    by_id = {t.pk: t for t in mine}
    held_by_ticket = {p.ticket: p for p in held}
    for trade_id, ticket in result.matches.items():
        trade = by_id[trade_id]
        position = held_by_ticket[ticket]
        if trade.status != ExpectedTrade.Status.OPEN or trade.ticket != ticket:
            trade.status = ExpectedTrade.Status.OPEN
            trade.ticket = ticket
            trade.opened_at = trade.opened_at or position.opened_at
            trade.fill_price = position.price_open
            trade.filled_volume = position.volume
            book.changed_trades.append(trade)
    for trade_id, record in result.closed.items():
        trade = by_id[trade_id]
        trade.status = ExpectedTrade.Status.CLOSED
        trade.closed_at = record.closed_at
        trade.close_reason = record.reason
        book.changed_trades.append(trade)


def _divergences_follow(book: _Book, outcome: ReconcileOutcome, account_id: int,
                        result: matching.Result, now: datetime) -> None:
    """Open divergences that are new, resolve those gone, log events: each once."""
    current = {d.key: d for d in result.divergences if not d.is_event}
    open_here = {r.key: r for r in book.open_rows.get(account_id, [])}
    for key, d in current.items():
        if key not in open_here:
            book.new_rows.append(OpenDivergence(
                account_id=account_id, key=key, kind=d.kind, expected_trade_id=d.expected_id,
                ticket=d.ticket, figures=d.figures, opened_at=now))
            book.logs.append(_log(account_id, d.kind, d.key, d.expected_id, d.ticket,
                                  d.figures, ReconciliationLog.Event.OPENED, now))
            outcome.opened += 1
    for key, row in open_here.items():
        if key not in current:
            book.gone_rows.append(row.pk)
            book.logs.append(_log(account_id, row.kind, key, row.expected_trade_id,
                                  row.ticket, row.figures, ReconciliationLog.Event.RESOLVED,
                                  now))
            outcome.resolved += 1
    for d in result.divergences:
        if d.is_event:
            book.logs.append(_log(account_id, d.kind, d.key, d.expected_id, d.ticket,
                                  d.figures, ReconciliationLog.Event.OCCURRED, now))
            outcome.occurred += 1


def _account_reconcile(book: _Book, outcome: ReconcileOutcome, account_id: int,
                       now: datetime) -> None:
    undecided = {p.ticket for p in book.closed.get(account_id, [])
                 if p.close_reason == Position.CloseReason.UNKNOWN}
    # A position gone without its closing deal yet: decide next cycle, not now.
    mine = [t for t in book.trades.get(account_id, []) if t.ticket not in undecided]
    held = book.held.get(account_id, [])
    server = book.server_of.get(account_id)
    result = matching.reconcile(
        expected=[_expected(t) for t in mine],
        held=[_held(p) for p in held],
        closed=[_closed(p) for p in book.closed.get(account_id, [])
                if p.ticket not in undecided],
        now=now,
        tolerances=tolerances({sym: pt for (srv, sym), pt in book.points.items()
                               if srv == server}),
    )
    _trades_follow(book, result, mine, held)
    _divergences_follow(book, outcome, account_id, result, now)


def _book_write(book: _Book) -> None:
    if book.changed_trades:
        ExpectedTrade.objects.bulk_update(
            book.changed_trades, ["status", "ticket", "opened_at", "fill_price",
                                  "filled_volume", "closed_at", "close_reason", "updated_at"])
    if book.gone_rows:
        OpenDivergence.objects.filter(pk__in=book.gone_rows).delete()
    if book.new_rows:
        OpenDivergence.objects.bulk_create(book.new_rows)
    if book.logs:
        ReconciliationLog.objects.bulk_create(book.logs)
        _alert_members(book.logs)


def accounts_reconcile(*, account_ids: list[int], now: datetime | None = None
                       ) -> ReconcileOutcome:
    """Reconcile accounts that were *just synced successfully*. See the module docstring.
    A constant number of queries per batch (10 or 100 accounts alike), plus one per
    member alerted."""
    outcome = ReconcileOutcome(accounts=list(account_ids))
    if not account_ids:
        return outcome
    started = time.perf_counter()
    now = now or timezone.now()
    with transaction.atomic():
        book = _book_read(account_ids)
        for account_id in account_ids:
            _account_reconcile(book, outcome, account_id, now)
        _book_write(book)

    for log in book.logs:
        if log.event != ReconciliationLog.Event.RESOLVED:
            metrics.divergences_total.labels(reason=log.kind).inc()
    metrics.latency.observe(time.perf_counter() - started)
    return outcome


def _alert_members(logs: list[ReconciliationLog]) -> None:
    """Each new divergence (or one-off event) goes to its member's outbox, in this
    transaction. Resolutions are logged, not messaged."""
    news = [log for log in logs if log.event != ReconciliationLog.Event.RESOLVED]
    if not news:
        return
    owners = {a.pk: a for a in TradingAccount.objects.select_related("user").filter(
        pk__in={log.account_id for log in news})}
    for log in news:
        account = owners[log.account_id]
        what = ", ".join(f"{k} {v}" for k, v in log.figures.items()
                         if k in ("symbol", "side", "ticket", "reason", "expected_volume",
                                  "actual_volume", "difference_points") and v)
        alert_raise(user=account.user, account=account, kind="divergence_opened",
                    text=f"{account.login}@{account.server}: "
                           f"{log.kind.replace('_', ' ')} ({what})",
                    payload={"kind": log.kind, "key": log.key, **log.figures})


def _group(rows: list) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(row.account_id, []).append(row)
    return grouped


def _log(account_id: int, kind: str, key: str, expected_id: int | None, ticket: int | None,
         figures: dict, event: str, now: datetime) -> ReconciliationLog:
    return ReconciliationLog(account_id=account_id, kind=kind, key=key,
                             expected_trade_id=expected_id, ticket=ticket, figures=figures,
                             event=event, created_at=now)


def expected_trades_register(*, account: TradingAccount, symbol: str, side: str,
                             entries: list[tuple[int, Decimal]], approval_ref: str,
                             requested_price: Decimal | None = None, sl: Decimal | None = None,
                             tp: Decimal | None = None, magic: int | None = None,
                             signal_ref: str = "", platform_checked: bool = False,
                             ) -> list[ExpectedTrade]:
    """Register a setup's entries at once: ``entries`` is [(entry number 1..3, volume in
    lots)]; returns their rows (with their comment ``tag``) in the same order.

    The same rows as ``expected_trade_register`` once per entry, in two statements: one
    INSERT of every entry that skips those already registered (ON CONFLICT DO NOTHING on
    (account, approval_ref, entry_number)), then one SELECT of the setup's rows, so a
    retried or concurrent registration of the same approval returns the first rows and never
    doubles the exposure. ``approval_ref`` is required (ValueError without it). An entry
    the INSERT skipped for a tag collision (two random 50-bit tags alike) is registered
    alone. A caller that has not checked the platform state (``platform_checked``) takes the
    one-by-one path, which checks it (409 ``platform_not_active``).
    """
    if not approval_ref:
        raise ValueError("a batch registration needs an approval_ref (its idempotency key)")
    fields = dict(symbol=symbol, side=side, requested_price=requested_price, sl=sl, tp=tp,
                  magic=settings.BOT_MAGIC if magic is None else magic, signal_ref=signal_ref)
    if not platform_checked:
        return [expected_trade_register(account=account, volume=volume, entry_number=number,
                                        approval_ref=approval_ref, **fields)
                for number, volume in entries]
    ExpectedTrade.objects.bulk_create([
        ExpectedTrade(account=account, approval_ref=approval_ref, entry_number=number,
                      volume=volume, tag=matching.make_tag(secrets.token_hex(5)), **fields)
        for number, volume in entries
    ], ignore_conflicts=True)
    found = {trade.entry_number: trade for trade in ExpectedTrade.objects.filter(
        account=account, approval_ref=approval_ref,
        entry_number__in=[number for number, _ in entries])}
    for number, volume in entries:
        if number not in found:  # its tag collided with another trade's: draw again alone
            found[number] = expected_trade_register(
                account=account, volume=volume, entry_number=number,
                approval_ref=approval_ref, platform_checked=True, **fields)
    return [found[number] for number, _ in entries]
