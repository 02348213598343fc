"""Drawdown and period levels (pipeline step 4): judge the accounts whose read just
succeeded, record each level transition, open a liquidation episode at critical, and ask
for the next read sooner near a threshold."""


from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
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
from guards.services.configuration import effective_settings
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


def accounts_guard(*, account_ids: list[int], now: datetime | None = None) -> GuardOutcome:
    """Judge accounts whose read *just* succeeded; open episodes; tighten cadence.

    Each level transition is one ``DrawdownAlert``. A critical level (or a period rule
    whose action is "close") opens a liquidation episode, alerts the member with the
    positions and the countdown, and schedules the re-check; a read-only account is only
    alerted. Constant queries per batch, plus the episodes opened.
    """
    outcome = GuardOutcome()
    if not account_ids:
        return outcome
    now = now or timezone.now()
    accounts = list(TradingAccount.objects.filter(
        pk__in=account_ids, sync_status=TradingAccount.SyncStatus.HEALTHY,
        equity__isnull=False, peak_equity__isnull=False))
    if not accounts:
        return outcome
    ids = [a.pk for a in accounts]
    AccountGuardState.objects.bulk_create([AccountGuardState(account_id=i) for i in ids],
                                          ignore_conflicts=True)
    states = {s.account_id: s for s in AccountGuardState.objects.filter(account_id__in=ids)}
    busy = set(LiquidationEpisode.objects.filter(account_id__in=ids, status__in=ACTIVE_EPISODE)
               .values_list("account_id", flat=True))
    effective = effective_settings(ids)
    holding = set(Position.objects.filter(account_id__in=ids, status=Position.Status.OPEN)
                  .values_list("account_id", flat=True).distinct())
    drawdown_alerts: list[DrawdownAlert] = []
    alerts: list[GuardAlert] = []
    to_open: list[tuple[TradingAccount, str, dict]] = []
    for account in accounts:
        eff = effective[account.pk]
        state = states[account.pk]
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
            outcome.transitions += 1
            drawdown_alerts.append(DrawdownAlert(
                account_id=account.pk, level_from=state.level, level_to=reading.level,
                reason=reading.reason, drawdown_percent=reading.drawdown_percent,
                equity=account.equity, peak_equity=account.peak_equity, created_at=now))
            if reading.level == levels.Level.WARNING:
                alerts.append(guard_alert(account.pk, GuardAlert.Kind.DRAWDOWN_WARNING,
                                     f"Drawdown {reading.drawdown_percent} % of peak equity "
                                     f"(warning at {eff.thresholds.alert_percent} %).", now))
            if reading.level == levels.Level.CRITICAL and account.credentials_read_only:
                alerts.append(guard_alert(account.pk, GuardAlert.Kind.READ_ONLY_NOT_CLOSED,
                                     f"Critical ({reading.reason}) on a read-only account: "
                                     "it is watched, never closed. Act yourself.", now))
        state.level = reading.level
        close_rule = None
        for breach in levels.period_breaches(
                equity=account.equity, initial_balance=state.initial_balance,
                day_start_balance=state.day_start_balance, peak_equity=account.peak_equity,
                limits=eff.limits):
            action = eff.actions[breach.rule.value]
            if breach.rule.value not in state.breached_rules:
                state.breached_rules = [*state.breached_rules, breach.rule.value]
                alerts.append(guard_alert(account.pk, GuardAlert.Kind.PERIOD_RULE,
                                     f"{breach.rule.value}: {breach.detail} (action: {action})",
                                     now, {"rule": breach.rule.value, "floor": str(breach.floor)}))
            if action == Action.STOP:
                state.trading_blocked = True
            elif action == Action.CLOSE:
                state.trading_blocked = True
                close_rule = close_rule or breach.rule.value
        state.checked_at = now
        critical = reading.level == levels.Level.CRITICAL or close_rule is not None
        # Nothing open, nothing to close: a flat account that stays below its limit after a
        # liquidation does not open a new episode every cycle.
        if critical and not account.credentials_read_only and account.pk not in busy \
                and account.pk in holding:
            reason = close_rule or reading.reason
            to_open.append((account, reason, {
                "drawdown_percent": str(reading.drawdown_percent), "equity": str(account.equity),
                "peak_equity": str(account.peak_equity), "warning_seconds": eff.warning_seconds}))
        cadence = levels.sync_cadence_seconds(drawdown_percent=reading.drawdown_percent,
                                              thresholds=eff.thresholds,
                                              default=account.sync_cadence_seconds)
        soon = now + timedelta(seconds=cadence)
        if account.next_sync_at is None or soon < account.next_sync_at:
            # near a threshold the guard asks for the next read sooner than the cadence
            TradingAccount.objects.filter(pk=account.pk).update(next_sync_at=soon)

    with transaction.atomic():
        DrawdownAlert.objects.bulk_create(drawdown_alerts)
        # An upsert on the rows we just read: one INSERT … ON CONFLICT, where bulk_update
        # would send a CASE per column per row (measured: 114 ms against 8 ms per 100 rows).
        AccountGuardState.objects.bulk_create(
            states.values(), update_conflicts=True, unique_fields=["account"],
            update_fields=["level", "initial_balance", "day_start_balance", "day_start_at",
                           "breached_rules", "trading_blocked", "checked_at",
                           "cash_flow_seen"])
        for account, reason, trigger in to_open:
            episode = episode_open(account=account, reason=reason, trigger=trigger, now=now)
            if episode is not None:
                outcome.episodes.append(episode.pk)
                alerts.append(guard_alert(
                    account.pk, GuardAlert.Kind.LIQUIDATION_COUNTDOWN,
                    f"{reason}: all positions will be closed in {trigger['warning_seconds']} s "
                    "unless the account recovers.", now,
                    {"positions": _positions_payload(account.pk), **trigger}))
        guard_alerts_save(alerts)
    return outcome
