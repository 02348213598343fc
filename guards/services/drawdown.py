"""Drawdown and period levels (pipeline step 4): judge the accounts whose read just
succeeded, record each level transition, open a liquidation episode at critical, and ask
for the next read sooner near a threshold."""


from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, DateTimeField, F, Value, When
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from accounts.models import TradingAccount
from guards import levels, metrics
from guards.models import (
    AccountGuardState,
    Action,
    DrawdownAlert,
    GuardAlert,
    LiquidationEpisode,
)
from guards.services.alerts import guard_alert, guard_alerts_save
from guards.services.configuration import Effective, effective_settings
from guards.services.episodes import ACTIVE_EPISODE, episode_open
from positions.models import Position


@dataclass(slots=True)
class GuardOutcome:
    transitions: int = 0
    episodes: list[int] = field(default_factory=list)


def _positions_payload(account_id: int) -> list[dict[str, str]]:
    return [
        {"ticket": str(p.ticket), "symbol": p.symbol, "side": p.side, "volume": str(p.volume),
         "profit": str(p.profit)}
        for p in Position.objects.filter(account_id=account_id, status=Position.Status.OPEN)
    ]


def _period_bases_move(state: AccountGuardState, account: TradingAccount) -> None:
    """Deposits and withdrawals are not profit or loss: the period floors' bases (initial
    and start-of-day balance) move with the account's net cash flow since the last check,
    as the high-water mark does in the sync."""
    total = account.cash_flow_total or Decimal(0)
    if state.initial_balance is None:
        state.initial_balance = account.balance
    elif total != state.cash_flow_seen:
        moved = total - state.cash_flow_seen
        state.initial_balance += moved
        if state.day_start_balance is not None:
            state.day_start_balance += moved
    state.cash_flow_seen = total


@dataclass(slots=True)
class _Batch:
    """What judging a batch writes, gathered so it is written in a constant number of
    statements."""

    now: datetime
    busy: set[int]
    holding: set[int]
    drawdown_alerts: list[DrawdownAlert] = field(default_factory=list)
    alerts: list[GuardAlert] = field(default_factory=list)
    to_open: list[tuple[TradingAccount, str, dict]] = field(default_factory=list)
    sooner: dict[int, datetime] = field(default_factory=dict)  # account → next read


def _level_transition(batch: _Batch, account: TradingAccount, state: AccountGuardState,
                      reading: levels.DrawdownReading, eff: Effective) -> None:
    """Record a change of drawdown level: one ``DrawdownAlert``, and the member's alert
    at warning (and at critical on a read-only account, which is never closed)."""
    now = batch.now
    batch.drawdown_alerts.append(DrawdownAlert(
        account_id=account.pk, level_from=state.level, level_to=reading.level,
        reason=reading.reason, drawdown_percent=reading.drawdown_percent,
        equity=account.equity, peak_equity=account.peak_equity, created_at=now))
    if reading.level == levels.Level.WARNING:
        batch.alerts.append(guard_alert(
            account.pk, GuardAlert.Kind.DRAWDOWN_WARNING,
            f"Drawdown {reading.drawdown_percent} % of peak equity "
            f"(warning at {eff.thresholds.alert_percent} %).", now))
    if reading.level == levels.Level.CRITICAL and account.credentials_read_only:
        batch.alerts.append(guard_alert(
            account.pk, GuardAlert.Kind.READ_ONLY_NOT_CLOSED,
            f"Critical ({reading.reason}) on a read-only account: "
            "it is watched, never closed. Act yourself.", now))


def _period_rules(batch: _Batch, account: TradingAccount, state: AccountGuardState,
                  eff: Effective) -> str | None:
    """Apply the period rules (daily loss, max loss, trailing drawdown): alert each new
    breach once, block trading on "stop" and "close". Returns the first rule whose action
    is "close", or None."""
    close_rule = None
    for breach in levels.period_breaches(
            equity=account.equity, initial_balance=state.initial_balance,
            day_start_balance=state.day_start_balance, peak_equity=account.peak_equity,
            limits=eff.limits):
        action = eff.actions[breach.rule.value]
        if breach.rule.value not in state.breached_rules:
            state.breached_rules = [*state.breached_rules, breach.rule.value]
            batch.alerts.append(guard_alert(
                account.pk, GuardAlert.Kind.PERIOD_RULE,
                f"{breach.rule.value}: {breach.detail} (action: {action})", batch.now,
                {"rule": breach.rule.value, "floor": str(breach.floor)}))
        if action in (Action.STOP, Action.CLOSE):
            state.trading_blocked = True
        if action == Action.CLOSE:
            close_rule = close_rule or breach.rule.value
    return close_rule


def _judge(batch: _Batch, account: TradingAccount, state: AccountGuardState,
           eff: Effective) -> None:
    """One account: its drawdown level (with hysteresis), its trading day, its period
    rules, whether to open an episode, and how soon to read it again."""
    now = batch.now
    reading = levels.drawdown_level(peak_equity=account.peak_equity, equity=account.equity,
                                    thresholds=eff.thresholds,
                                    previous=levels.Level(state.level),
                                    band_points=eff.band_points)
    metrics.account_drawdown.observe(float(reading.drawdown_percent))
    day_start = levels.trading_day_start(now=now, tz=eff.timezone, rollover=eff.rollover)
    _period_bases_move(state, account)
    if state.day_start_at is None or state.day_start_at < day_start:
        state.day_start_at, state.day_start_balance = day_start, account.balance
        state.breached_rules, state.trading_blocked = [], False
    if reading.level != state.level:
        _level_transition(batch, account, state, reading, eff)
    state.level = reading.level
    close_rule = _period_rules(batch, account, state, eff)
    state.checked_at = now
    critical = reading.level == levels.Level.CRITICAL or close_rule is not None
    # Nothing open, nothing to close: a flat account that stays below its limit after a
    # liquidation does not open a new episode every cycle.
    if critical and not account.credentials_read_only and account.pk not in batch.busy \
            and account.pk in batch.holding:
        batch.to_open.append((account, close_rule or reading.reason, {
            "drawdown_percent": str(reading.drawdown_percent), "equity": str(account.equity),
            "peak_equity": str(account.peak_equity), "warning_seconds": eff.warning_seconds}))
    cadence = levels.sync_cadence_seconds(drawdown_percent=reading.drawdown_percent,
                                          thresholds=eff.thresholds,
                                          default=account.sync_cadence_seconds)
    soon = now + timedelta(seconds=cadence)
    if account.next_sync_at is None or soon < account.next_sync_at:
        batch.sooner[account.pk] = soon


def _next_reads_bring_forward(sooner: dict[int, datetime]) -> None:
    """Near a threshold the guard asks for the next read sooner than the cadence: one
    UPDATE for the whole batch, which never moves a read later than already planned
    (another process may have planned an earlier one meanwhile)."""
    if not sooner:
        return
    planned = Case(*[When(pk=pk, then=Value(at)) for pk, at in sooner.items()],
                   output_field=DateTimeField())
    TradingAccount.objects.filter(pk__in=list(sooner)).update(
        next_sync_at=Least(Coalesce(F("next_sync_at"), planned), planned))


def accounts_guard(*, account_ids: list[int], now: datetime | None = None) -> GuardOutcome:
    """Judge accounts whose read *just* succeeded; open episodes; tighten cadence.

    Each level transition is one ``DrawdownAlert``. A critical level (or a period rule
    whose action is "close") opens a liquidation episode, alerts the member with the
    positions and the countdown, and schedules the re-check; a read-only account is only
    alerted. A constant number of queries per batch (10 or 100 accounts alike), plus the
    episodes opened and the alerts raised.
    """
    outcome = GuardOutcome()
    if not account_ids:
        return outcome
    accounts = list(TradingAccount.objects.filter(
        pk__in=account_ids, sync_status=TradingAccount.SyncStatus.HEALTHY,
        equity__isnull=False, peak_equity__isnull=False))
    if not accounts:
        return outcome
    ids = [a.pk for a in accounts]
    AccountGuardState.objects.bulk_create([AccountGuardState(account_id=i) for i in ids],
                                          ignore_conflicts=True)
    states = {s.account_id: s for s in AccountGuardState.objects.filter(account_id__in=ids)}
    batch = _Batch(
        now=now or timezone.now(),
        busy=set(LiquidationEpisode.objects.filter(
            account_id__in=ids, status__in=ACTIVE_EPISODE).values_list("account_id", flat=True)),
        holding=set(Position.objects.filter(account_id__in=ids, status=Position.Status.OPEN)
                    .values_list("account_id", flat=True).distinct()))
    effective = effective_settings(ids)
    for account in accounts:
        previous = states[account.pk].level
        _judge(batch, account, states[account.pk], effective[account.pk])
        outcome.transitions += states[account.pk].level != previous
    _next_reads_bring_forward(batch.sooner)
    with transaction.atomic():
        DrawdownAlert.objects.bulk_create(batch.drawdown_alerts)
        # An upsert on the rows we just read: one INSERT … ON CONFLICT, where bulk_update
        # would send a CASE per column per row (measured: 114 ms against 8 ms per 100 rows).
        AccountGuardState.objects.bulk_create(
            states.values(), update_conflicts=True, unique_fields=["account"],
            update_fields=["level", "initial_balance", "day_start_balance", "day_start_at",
                           "breached_rules", "trading_blocked", "checked_at",
                           "cash_flow_seen"])
        for account, reason, trigger in batch.to_open:
            episode = episode_open(account=account, reason=reason, trigger=trigger,
                                   now=batch.now)
            if episode is not None:
                outcome.episodes.append(episode.pk)
                batch.alerts.append(guard_alert(
                    account.pk, GuardAlert.Kind.LIQUIDATION_COUNTDOWN,
                    f"{reason}: all positions will be closed in {trigger['warning_seconds']} s "
                    "unless the account recovers.", batch.now,
                    {"positions": _positions_payload(account.pk), **trigger}))
        guard_alerts_save(batch.alerts)
    return outcome
