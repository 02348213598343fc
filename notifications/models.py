"""The Telegram alert outbox and each member's choice per alert type.

An ``Alert`` row is written in the transaction of the event that causes it (so it is never
lost and never sent for an event that rolled back); a ``notify`` worker delivers it and
records the outcome on the row. ``AlertPreference`` holds a member's mode per kind; a kind
with no row is "on".
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from accounts.models import TradingAccount

# Telegram Bot API docs, sendMessage: "text: 1-4096 characters after entities parsing".
TELEGRAM_TEXT_LIMIT = 4096


class Alert(models.Model):
    """One message for one member, and the story of its delivery.

    ``due_at`` is when a worker may next take the row: for ``pending`` the earliest next
    try (creation, or a retry's backoff / Telegram's ``retry_after``); for ``sending`` the
    end of the sending worker's lease, after which a crashed send may be taken over.
    """

    class Kind(models.TextChoices):
        DRAWDOWN_WARNING = "drawdown_warning", "Drawdown warning"
        LIQUIDATION_COUNTDOWN = "liquidation_countdown", "Liquidation countdown"
        LIQUIDATION_DONE = "liquidation_done", "Liquidation done"
        LIQUIDATION_CANCELLED = "liquidation_cancelled", "Liquidation cancelled"
        CLOSE_FAILED = "close_failed", "Close failed"
        DIVERGENCE_OPENED = "divergence_opened", "Divergence opened"
        MARKET = "market", "Market guard"
        ACCOUNT_STALE = "account_stale", "Account stale"
        ACCOUNT_RECOVERED = "account_recovered", "Account recovered"
        PERIOD_RULE = "period_rule", "Period loss rule"
        READ_ONLY = "read_only", "Read-only account: not closed"
        PUSH_REJECTED = "push_rejected", "EA push rejected as implausible"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class FailureReason(models.TextChoices):
        NO_TELEGRAM_ID = "no_telegram_id", "Member has no Telegram id"
        BOT_NOT_CONFIGURED = "bot_not_configured", "TELEGRAM_BOT_TOKEN is not set"
        BLOCKED = "blocked", "Forbidden by Telegram (403: bot blocked or chat gone)"
        REJECTED = "rejected", "Rejected by Telegram (4xx, e.g. 400 chat not found)"
        RETRIES_EXHAUSTED = "retries_exhausted", "Retries exhausted"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="alerts")
    account = models.ForeignKey(TradingAccount, null=True, blank=True,
                                on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    text = models.CharField(max_length=TELEGRAM_TEXT_LIMIT)
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    silent = models.BooleanField(default=False,
                                 help_text="Sent with disable_notification (no sound).")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Calls to Telegram.")
    failure_reason = models.CharField(max_length=20, choices=FailureReason.choices,
                                      blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    due_at = models.DateTimeField(help_text="pending: next try not before; "
                                            "sending: the worker's lease ends")
    claim = models.UUIDField(null=True, blank=True, editable=False,
                             help_text="The sending worker's claim; only it marks the row.")
    sent_at = models.DateTimeField(null=True, blank=True)
    telegram_message_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # alert_deliver's claim and alerts_sweep: status in (pending, sending) and
            # due_at <= cutoff. Partial: finished rows (almost all of them) stay out of it.
            models.Index(fields=["due_at"], name="alert_undelivered_due_idx",
                         condition=Q(status__in=["pending", "sending"])),
            # the admin and a member's history: a member's alerts, newest first
            models.Index(fields=["user", "-created_at"], name="alert_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}: {self.status}"


class AlertPreference(models.Model):
    """A member's mode for one kind: on, silent (no sound) or off (no alert written)."""

    class Mode(models.TextChoices):
        ON = "on", "On"
        SILENT = "silent", "Silent"
        OFF = "off", "Off"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="alert_preferences")
    kind = models.CharField(max_length=24, choices=Alert.Kind.choices)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ON)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # also the index of alert_enqueue's lookup (user, kind) and of a member's list
            models.UniqueConstraint(fields=["user", "kind"], name="uniq_alert_preference"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {self.mode}"
