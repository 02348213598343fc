"""The owner's global risk configuration, its history, and every sizing decision.

``RiskConfiguration`` is one row (pk 1): the database is the only source of truth; every
process reads it through a cache keyed by a version number that each change bumps
(``risk.services``), never from a module-level dict. ``RiskConfigurationChange`` and
``TradeSetupRiskLog`` are append-only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from accounts.models import TradingAccount, money_field, percent_field
from config.append_only import AppendOnlyModel

RISK_MIN = Decimal("0.1")
RISK_MAX = Decimal("50")


def _percent(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=6, decimal_places=2, **kwargs)


class RiskConfiguration(models.Model):
    fixed_risk_percent = _percent(
        validators=[MinValueValidator(RISK_MIN), MaxValueValidator(RISK_MAX)],
        help_text="Risk of one whole setup, % of the balance (0.1–50)")
    entry_split_1_percent = _percent(validators=[MinValueValidator(0)])
    entry_split_2_percent = _percent(validators=[MinValueValidator(0)])
    entry_split_3_percent = _percent(validators=[MinValueValidator(0)])
    margin_buffer_percent = _percent(
        validators=[MinValueValidator(0), MaxValueValidator(95)],
        help_text="Share of free margin kept unused, %")
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="risk_configuration_single_row"),
            models.CheckConstraint(
                condition=Q(fixed_risk_percent__gte=RISK_MIN, fixed_risk_percent__lte=RISK_MAX),
                name="risk_percent_in_bounds"),
        ]

    def __str__(self) -> str:
        return f"risk {self.fixed_risk_percent} % (v{self.version})"

    @property
    def splits(self) -> tuple[Decimal, Decimal, Decimal]:
        return (self.entry_split_1_percent, self.entry_split_2_percent,
                self.entry_split_3_percent)


class RiskConfigurationChange(AppendOnlyModel):
    """One change of the configuration: the whole before and after, who and when."""

    version = models.PositiveIntegerField()
    previous = models.JSONField()
    new = models.JSONField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, help_text="api or admin")
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"v{self.version} by {self.changed_by_id} at {self.changed_at:%Y-%m-%d %H:%M}"


class TradeSetupRiskLog(AppendOnlyModel):
    """One sizing request, approved or not: its inputs and its whole answer."""

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="risk_logs")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                     on_delete=models.PROTECT, related_name="+")
    signal_id = models.CharField(max_length=64)
    instrument = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    entry_price = models.DecimalField(max_digits=20, decimal_places=8)
    stop_loss = models.DecimalField(max_digits=20, decimal_places=8)
    take_profit = models.DecimalField(max_digits=20, decimal_places=8, null=True)
    config_version = models.PositiveIntegerField()
    global_risk_percent = percent_field()
    balance = money_field(null=True)
    # the tick value the stop was sized with (the loss tick value when the broker reported
    # one): account currency per tick of 1 lot; null when refused before the symbol's rules
    # were read. The exact figure is in ``result``.
    tick_value_used = models.DecimalField(max_digits=28, decimal_places=12, null=True)
    tick_value_source = models.CharField(max_length=16, blank=True,
                                         help_text="tick_value_loss or tick_value")
    setup_approved = models.BooleanField()
    rejection_reason = models.CharField(max_length=40, blank=True)
    total_volume = models.DecimalField(max_digits=16, decimal_places=4)
    result = models.JSONField(help_text="The whole answer, as sent")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # admin and audits: an account's latest setups
            models.Index(fields=["account", "-created_at"], name="risklog_account_time_idx"),
        ]

    def __str__(self) -> str:
        verdict = "approved" if self.setup_approved else f"rejected: {self.rejection_reason}"
        return f"{self.signal_id} {self.instrument} {verdict}"


class AccountMark(models.Model):
    """The latest mark-to-market estimate of one account (``risk.marking``), upserted by
    every pass (one statement), and when its priority read was last asked for. Never a
    guard input: only a fresh read is judged. ``compared_at``: when the next real read was
    compared with it (``guard_estimate_error_percent``)."""

    account = models.OneToOneField(TradingAccount, on_delete=models.CASCADE,
                                   primary_key=True, related_name="mark")
    equity = money_field(help_text="Estimated equity, deposit currency")
    drawdown_percent = percent_field(help_text="(peak − estimated equity) / peak × 100")
    standing = models.CharField(max_length=16, help_text="risk.mtm.Estimate")
    estimated_at = models.DateTimeField()
    read_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When its last priority read was asked for")
    compared_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.account_id}: {self.equity} ({self.standing})"
