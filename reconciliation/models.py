"""What the bot expected, and the append-only record of where the broker diverged.

``ExpectedTrade`` is one entry the platform's bot placed or will place. ``OpenDivergence``
holds the divergences that are true right now (one row per account and key), so each is
logged when it appears and when it resolves, not on every cycle. ``ReconciliationLog`` is
the audit trail: rows are only ever inserted (a model guard, and on PostgreSQL a trigger
that refuses UPDATE, DELETE and TRUNCATE).
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from accounts.models import TradingAccount
from brokers.gateway import Side
from config.append_only import AppendOnlyModel
from positions.models import price_field, volume_field
from reconciliation.matching import MAX_TAG_LENGTH, Kind


class ExpectedTrade(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending (sent, not seen at the broker yet)"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    Side = Side  # brokers.gateway.Side: the project's one side type

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="expected_trades")
    signal_ref = models.CharField(max_length=64, blank=True, help_text="The signal's id")
    approval_ref = models.CharField(max_length=64, blank=True,
                                    help_text="The approved setup's id (risk log)")
    entry_number = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(3)])
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices())
    volume = volume_field(help_text="Lots")
    requested_price = price_field(null=True, blank=True)
    sl = price_field(null=True, blank=True)
    tp = price_field(null=True, blank=True)
    magic = models.BigIntegerField()
    # unique: a position's comment tag names one trade (make_tag); no query reads by tag
    # (reconcile matches a batch's trades in memory), so the index only keeps tags unique
    tag = models.CharField(max_length=MAX_TAG_LENGTH, unique=True,
                           help_text="Written into the order comment to trace the position")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    ticket = models.BigIntegerField(null=True, blank=True, help_text="Broker position ticket")
    fill_price = price_field(null=True, blank=True)
    filled_volume = volume_field(null=True, blank=True)
    close_reason = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(entry_number__gte=1, entry_number__lte=3),
                                   name="expected_entry_1_to_3"),
            models.CheckConstraint(condition=Q(volume__gt=0), name="expected_volume_positive"),
            # a retried registration of the same approved entry finds the first one
            models.UniqueConstraint(fields=["account", "approval_ref", "entry_number"],
                                    condition=~Q(approval_ref=""),
                                    name="uniq_expected_approval_entry"),
        ]
        indexes = [
            # reconcile: the live (pending/open) trades of a batch of accounts
            models.Index(fields=["account", "status"], name="expected_account_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tag} {self.side} {self.volume} {self.symbol} ({self.status})"


KIND_CHOICES = [(k.value, k.value.replace("_", " ")) for k in Kind]


class OpenDivergence(models.Model):
    """A divergence that is true now. Deleted (and logged "resolved") when it goes away."""

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE,
                                related_name="open_divergences")
    key = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    expected_trade = models.ForeignKey(ExpectedTrade, null=True, blank=True,
                                       on_delete=models.SET_NULL)
    ticket = models.BigIntegerField(null=True, blank=True)
    figures = models.JSONField(default=dict)
    opened_at = models.DateTimeField()

    class Meta:
        constraints = [
            # one open divergence per (account, key); also the index of reconcile's read of
            # a batch's open divergences and the member's list (account_id IN ...)
            models.UniqueConstraint(fields=["account", "key"], name="uniq_open_divergence"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class ReconciliationLog(AppendOnlyModel):
    """One line of the audit trail: a divergence opened, resolved, or a one-off event."""

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        RESOLVED = "resolved", "Resolved"
        OCCURRED = "occurred", "Occurred (one-off)"

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="reconciliation_logs")
    expected_trade = models.ForeignKey(ExpectedTrade, null=True, blank=True,
                                       on_delete=models.PROTECT)
    ticket = models.BigIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    event = models.CharField(max_length=10, choices=Event.choices)
    key = models.CharField(max_length=64)
    figures = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # API and admin: an account's latest entries
            models.Index(fields=["account", "-created_at"], name="reclog_account_time_idx"),
            # admin filter by kind
            models.Index(fields=["kind", "-created_at"], name="reclog_kind_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event} {self.key}"

