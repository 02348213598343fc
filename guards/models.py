"""Guards: the platform's trading state (kill switch), guard thresholds, per-account guard
state, drawdown alerts, liquidation episodes and idempotent close requests.

Audit tables (``PlatformStateChange``, ``GuardSettingsChange``, ``DrawdownAlert``,
``CloseAttempt``, ``GuardAlert``) are append-only: a model guard, and on PostgreSQL a
trigger refusing UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import TradingAccount, money_field, percent_field, validate_iana_zone
from config.append_only import AppendOnlyModel
from positions.models import price_field, volume_field


class PlatformState(models.Model):
    """The kill switch: one row, in the database, so it survives restarts."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        REDUCING = "reducing", "Reducing (closes and reductions only; no new trades)"
        HALTED = "halted", "Halted (only the guards' risk-reducing closes)"

    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    reason = models.CharField(max_length=200, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="platform_state_single")]

    def __str__(self) -> str:
        return self.get_state_display()


class PlatformStateChange(AppendOnlyModel):
    previous = models.CharField(max_length=10)
    new = models.CharField(max_length=10)
    reason = models.CharField(max_length=200, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.previous} → {self.new}"


class Action(models.TextChoices):
    ALERT = "alert", "Alert only"
    STOP = "stop", "Alert and stop new trades"
    CLOSE = "close", "Alert and close all positions"


class GuardSettings(models.Model):
    """Guard thresholds: one global row (pk 1); ``GuardOverride`` adjusts one account."""

    max_drawdown_percent = percent_field(help_text="Critical drawdown, % of peak equity")
    drawdown_alert_threshold_percent = percent_field(help_text="Warning drawdown, %")
    min_equity = money_field(help_text="Critical below this equity (account currency)")
    pre_liquidation_warning_seconds = models.PositiveIntegerField()
    price_gap_alert_percent = percent_field()
    bid_ask_spread_max_percent = percent_field()
    min_liquidity_volume_lots = volume_field()
    market_action = models.CharField(max_length=8, choices=[
        (Action.ALERT.value, Action.ALERT.label), (Action.CLOSE.value, Action.CLOSE.label)],
        default=Action.ALERT)
    daily_loss_percent = percent_field(null=True, blank=True,
                                       help_text="% of the initial balance; empty: off")
    daily_loss_action = models.CharField(max_length=8, choices=Action.choices,
                                         default=Action.ALERT)
    max_loss_percent = percent_field(null=True, blank=True)
    max_loss_action = models.CharField(max_length=8, choices=Action.choices,
                                       default=Action.ALERT)
    trailing_drawdown_percent = percent_field(null=True, blank=True)
    trailing_drawdown_action = models.CharField(max_length=8, choices=Action.choices,
                                                default=Action.ALERT)
    day_timezone = models.CharField(
        max_length=64, blank=True, default="", validators=[validate_iana_zone],
        help_text="IANA zone where the trading day starts; empty: each account's trade "
                  "server zone (the broker's day)")
    day_rollover = models.TimeField(
        default=time(0, 0), help_text="When the broker's trading day starts, in that zone "
                                      "(most brokers: 00:00 server time)")
    warning_band_points = percent_field(
        default=Decimal(1), help_text="Hysteresis: after a warning, back to ok only below "
                                      "the warning level minus this many points")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "guard settings"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="guard_settings_single")]

    def __str__(self) -> str:
        return f"max drawdown {self.max_drawdown_percent} %"


OVERRIDABLE = (
    "max_drawdown_percent", "drawdown_alert_threshold_percent", "min_equity",
    "pre_liquidation_warning_seconds", "daily_loss_percent", "daily_loss_action",
    "max_loss_percent", "max_loss_action", "trailing_drawdown_percent",
    "trailing_drawdown_action",
)


class GuardOverride(models.Model):
    """Per-account thresholds; an empty field falls back to the global settings."""

    account = models.OneToOneField(TradingAccount, on_delete=models.CASCADE,
                                   related_name="guard_override")
    max_drawdown_percent = percent_field(null=True, blank=True)
    drawdown_alert_threshold_percent = percent_field(null=True, blank=True)
    min_equity = money_field(null=True, blank=True)
    pre_liquidation_warning_seconds = models.PositiveIntegerField(null=True, blank=True)
    daily_loss_percent = percent_field(null=True, blank=True)
    daily_loss_action = models.CharField(max_length=8, choices=Action.choices, blank=True)
    max_loss_percent = percent_field(null=True, blank=True)
    max_loss_action = models.CharField(max_length=8, choices=Action.choices, blank=True)
    trailing_drawdown_percent = percent_field(null=True, blank=True)
    trailing_drawdown_action = models.CharField(max_length=8, choices=Action.choices,
                                                blank=True)

    def __str__(self) -> str:
        return f"overrides for {self.account}"


class GuardSettingsChange(AppendOnlyModel):
    scope = models.CharField(max_length=32, help_text="global, or account:<id>")
    previous = models.JSONField()
    new = models.JSONField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.scope} at {self.changed_at:%Y-%m-%d %H:%M}"


class Level(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AccountGuardState(models.Model):
    """What the guards know of one account between cycles."""

    account = models.OneToOneField(TradingAccount, on_delete=models.CASCADE,
                                   related_name="guard_state")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.OK)
    initial_balance = money_field(null=True, blank=True)
    day_start_balance = money_field(null=True, blank=True)
    day_start_at = models.DateTimeField(null=True, blank=True)
    breached_rules = models.JSONField(default=list, help_text="Period rules breached today")
    trading_blocked = models.BooleanField(default=False,
                                          help_text="A period rule stopped new trades")
    checked_at = models.DateTimeField(null=True, blank=True)
    cash_flow_seen = money_field(
        default=0, help_text="The account's cash_flow_total the period floors already "
                             "moved by (deposits and withdrawals are not losses)")

    def __str__(self) -> str:
        return f"{self.account}: {self.level}"


class DrawdownAlert(AppendOnlyModel):
    """One level transition (not one per cycle)."""

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="drawdown_alerts")
    level_from = models.CharField(max_length=8, choices=Level.choices)
    level_to = models.CharField(max_length=8, choices=Level.choices)
    reason = models.CharField(max_length=32)
    drawdown_percent = percent_field()
    equity = money_field()
    peak_equity = money_field()
    created_at = models.DateTimeField()

    class Meta:
        # guard_check and the admin: an account's drawdown alerts, newest first
        indexes = [models.Index(fields=["account", "-created_at"], name="ddalert_acct_idx")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.level_from} → {self.level_to}"


class LiquidationEpisode(models.Model):
    """A critical breach: warned, re-checked after the delay, then closed or cancelled."""

    class Status(models.TextChoices):
        WARNING = "warning", "Countdown running"
        LIQUIDATING = "liquidating", "Closing positions"
        DONE = "done", "Closed"
        CANCELLED = "cancelled", "Recovered: cancelled"
        ABORTED = "aborted", "Aborted (no fresh read)"
        FAILED = "failed", "Closes failed: positions left open, needs a person"

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="liquidation_episodes")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.WARNING)
    reason = models.CharField(max_length=32)
    trigger = models.JSONField(default=dict, help_text="Figures at the breach")
    started_at = models.DateTimeField()
    recheck_at = models.DateTimeField()
    recheck_attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="Lease of the worker running the re-check now; "
                                         "the sweeper resumes the episode after it expires")
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            # one liquidation episode per account at a time, whatever races; also the index
            # of the active episodes of a batch (accounts_guard, guards_overview)
            models.UniqueConstraint(fields=["account"],
                                    condition=Q(status__in=["warning", "liquidating"]),
                                    name="one_active_episode_per_account"),
        ]

    def __str__(self) -> str:
        return f"episode {self.pk} of {self.account_id}: {self.status}"


class CloseRequest(models.Model):
    """Close one position once. (account, ticket, key) is unique: a retry, a duplicated
    task or a second beat finds the same row instead of closing twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending (outcome unknown until looked up)"
        DONE = "done", "Closed"
        FAILED = "failed", "Failed: needs a person"
        CANCELLED = "cancelled", "Cancelled by the owner"

    class Reason(models.TextChoices):
        DRAWDOWN = "drawdown", "Drawdown guard"
        PERIOD = "period", "Period loss rule"
        MARKET = "market", "Market guard"
        MANUAL = "manual", "Closed by the member"

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="close_requests")
    ticket = models.BigIntegerField()
    key = models.CharField(max_length=64, help_text="episode:<id>, manual:<position>, …")
    episode = models.ForeignKey(LiquidationEpisode, null=True, blank=True,
                                on_delete=models.PROTECT, related_name="close_requests")
    reason = models.CharField(max_length=10, choices=Reason.choices)
    detail = models.CharField(max_length=200, blank=True)
    symbol = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    sending_until = models.DateTimeField(null=True, blank=True,
                                         help_text="Lease of the worker sending now")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next attempt is due; the sweeper sends "
                                         "one if its task was lost")
    failing_since = models.DateTimeField(null=True, blank=True,
                                         help_text="First failed attempt of the current run")
    failure_alerted_at = models.DateTimeField(null=True, blank=True)
    last_retcode = models.IntegerField(null=True, blank=True)
    close_price = price_field(null=True, blank=True)
    closed_volume = volume_field(null=True, blank=True)
    realized_pnl = money_field(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # close_request_open's idempotency: the request of (account, ticket, key)
            models.UniqueConstraint(fields=["account", "ticket", "key"],
                                    name="uniq_close_request"),
        ]
        indexes = [
            # guards_overview and the admin: an account's close requests, newest first
            models.Index(fields=["account", "-created_at"], name="closereq_acct_idx"),
            # guards_sweep: close requests not final whose next attempt is overdue
            models.Index(fields=["status", "next_attempt_at"], name="closereq_due_idx"),
        ]

    def __str__(self) -> str:
        return f"close #{self.ticket} ({self.key}): {self.status}"


class CloseAttempt(AppendOnlyModel):
    close_request = models.ForeignKey(CloseRequest, on_delete=models.PROTECT,
                                      related_name="attempts_log")
    number = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=16, help_text="done / retry / ambiguous / failed")
    retcode = models.IntegerField(null=True)
    comment = models.CharField(max_length=200, blank=True)
    price = price_field(null=True)
    volume = volume_field(null=True)
    realized_pnl = money_field(null=True)
    duration_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.close_request_id}: {self.outcome}"


class GuardAlert(AppendOnlyModel):
    """An alert for the member (rows an admin can read until the Telegram outbox lands)."""

    class Kind(models.TextChoices):
        DRAWDOWN_WARNING = "drawdown_warning", "Drawdown warning"
        LIQUIDATION_COUNTDOWN = "liquidation_countdown", "Liquidation countdown"
        LIQUIDATION_DONE = "liquidation_done", "Liquidation done"
        LIQUIDATION_CANCELLED = "liquidation_cancelled", "Liquidation cancelled"
        LIQUIDATION_ABORTED = "liquidation_aborted", "Liquidation aborted"
        READ_ONLY_NOT_CLOSED = "read_only", "Read-only account: not closed"
        CLOSE_FAILED = "close_failed", "Close failed"
        PERIOD_RULE = "period_rule", "Period loss rule"
        MARKET = "market", "Market guard"

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="guard_alerts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    message = models.CharField(max_length=500)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        # guards_overview and the admin: an account's guard alerts, newest first
        indexes = [models.Index(fields=["account", "-created_at"], name="guardalert_acct_idx")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"
