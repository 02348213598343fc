"""Members and their linked broker accounts.

``TradingAccount`` is the seeds' AccountLink and UserMT5Account in one row: who owns it,
where it lives at the broker, its encrypted credentials, its last known live figures (in
``currency``) and the state of its sync.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from config.append_only import AppendOnlyModel


def money_field(**kwargs: Any) -> models.DecimalField:
    """Money in an account currency: 20 digits, 2 decimals."""
    return models.DecimalField(max_digits=20, decimal_places=2, **kwargs)


def percent_field(**kwargs: Any) -> models.DecimalField:
    """A percentage, 2 decimals (margin level can run to thousands of percent)."""
    return models.DecimalField(max_digits=12, decimal_places=2, **kwargs)


class User(AbstractUser):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        OWNER = "owner", "Owner"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # unique, so indexed: the Telegram sign-in's lookup by initData's user id
    telegram_id = models.BigIntegerField(null=True, blank=True, unique=True)

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER


class Terminal(models.Model):
    """A broker endpoint accounts are read and traded through: a MetaTrader 5 terminal
    behind its bridge (``kind`` mt5: ``url``), or an IB Gateway (``kind`` ib_gateway:
    ``host``, ``port``, ``client_id``). The owner registers them in the admin.

    One MetaTrader 5 terminal is logged into one account at a time, so a terminal serves
    one call sequence at a time, across every worker on every machine: ``lease_token`` /
    ``lease_until`` are taken with one conditional UPDATE. The token is never stored: the
    row names the environment variable that holds it (``token_env``). Health is written by
    the calls themselves: the last good call, failures in a row, the last latency.
    """

    class Kind(models.TextChoices):
        MT5 = "mt5", "MetaTrader 5 terminal (bridge)"
        IB_GATEWAY = "ib_gateway", "IB Gateway (TWS API)"

    # unique, so indexed: the admin's and the health page's lookup by name
    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MT5)
    url = models.CharField(max_length=200, blank=True,
                           help_text="MetaTrader 5: the bridge's URL, e.g. http://10.0.0.5:8765")
    host = models.CharField(max_length=200, blank=True, help_text="IB Gateway: host")
    port = models.PositiveIntegerField(null=True, blank=True,
                                       help_text="IB Gateway: API port (4001 live, 4002 paper)")
    client_id = models.PositiveIntegerField(null=True, blank=True,
                                            help_text="IB Gateway: the API clientId")
    token_env = models.CharField(
        max_length=64, blank=True,
        help_text="Name of the environment variable holding this terminal's token "
                  "(MetaTrader 5: the bridge's bearer token). Empty: MT5_BRIDGE_TOKEN.")
    capacity = models.PositiveIntegerField(default=500, help_text="Accounts it may hold")
    servers = models.JSONField(default=list, blank=True,
                               help_text="Trade servers it can log into; empty: any")
    enabled = models.BooleanField(default=True)
    # health
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True,
                                             help_text="The last call sequence's duration")
    last_error = models.CharField(max_length=500, blank=True)
    # one call sequence at a time (a worker on any machine)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # a priority read (the mark-to-market trigger) is waiting: routine call sequences do not
    # take the lease before this time (accounts.terminals.terminal_lease_acquire)
    priority_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="mt5") | ~Q(url=""), name="terminal_mt5_has_url"),
            models.CheckConstraint(
                condition=~Q(kind="ib_gateway") | (~Q(host="") & Q(port__isnull=False)),
                name="terminal_ib_gateway_has_host_port"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class TradingAccount(models.Model):
    class Broker(models.TextChoices):
        MT5 = "mt5", "MetaTrader 5"
        IBKR = "ibkr", "Interactive Brokers"

    class SyncStatus(models.TextChoices):
        PENDING = "pending", "Pending (never synced)"
        HEALTHY = "healthy", "Healthy"
        STALE = "stale", "Stale (last good figures kept)"
        ERROR = "error", "Error (needs a person)"

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="trading_accounts")
    broker = models.CharField(max_length=8, choices=Broker.choices, default=Broker.MT5)
    broker_name = models.CharField(max_length=100, blank=True)
    server = models.CharField(max_length=100)
    login = models.CharField(max_length=32)
    is_primary = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True, help_text="False once unlinked")
    unlinked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    credentials_encrypted = models.TextField(editable=False)
    credentials_read_only = models.BooleanField(
        default=False, help_text="Investor (read-only) password: watched, never auto-closed."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Live state, in ``currency``, as of ``last_synced_at``.
    currency = models.CharField(max_length=3, blank=True)
    leverage = models.PositiveIntegerField(null=True, blank=True)
    balance = money_field(null=True, blank=True)
    credit = money_field(null=True, blank=True)
    equity = money_field(null=True, blank=True)
    margin = money_field(null=True, blank=True)
    free_margin = money_field(null=True, blank=True)
    margin_level = percent_field(null=True, blank=True,
                                       help_text="equity / margin × 100, % (none when flat)")
    profit = money_field(null=True, blank=True,
                                 help_text="Unrealized P&L of open positions")
    peak_equity = money_field(null=True, blank=True,
                              help_text="High-water mark of equity since the baseline "
                                        "started, moved by deposits and withdrawals")
    baseline_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the high-water mark last restarted")
    baseline_reset_requested = models.BooleanField(
        default=False, help_text="Restart the high-water mark at the next good read "
                                 "(set when a liquidation completes)")
    cash_flow_total = money_field(
        default=0, help_text="Net balance operations (deposits − withdrawals, credit, "
                             "bonus, charges, …) seen since linking")
    deal_cursor_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="Time (UTC) of the newest deal read from the history")
    drawdown_percent = percent_field(null=True, blank=True,
                                           help_text="(peak − equity) / peak × 100")

    # Sync.
    sync_status = models.CharField(max_length=16, choices=SyncStatus.choices,
                                   default=SyncStatus.PENDING)
    sync_error_code = models.CharField(max_length=64, blank=True)
    sync_error_message = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True,
                                          help_text="Last successful sync")
    last_sync_attempt_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    sync_cadence_seconds = models.PositiveIntegerField(default=10)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    sync_dispatched_at = models.DateTimeField(null=True, blank=True, editable=False,
                                              help_text="When its last sync was enqueued")
    last_snapshot_at = models.DateTimeField(
        null=True, blank=True, help_text="Terminal time of the last pushed snapshot applied")
    sync_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    sync_lease_token = models.UUIDField(null=True, blank=True, editable=False)
    # the FK's index: a terminal's accounts (assignment, failover, sync batches per terminal)
    terminal = models.ForeignKey(
        Terminal, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts",
        help_text="The terminal this account is read and traded through; empty: the "
                  "default (MT5_BRIDGE_URL)")

    class Meta:
        constraints = [
            # Two owners of one broker account would double-count and could close each
            # other's positions. Partial: an unlinked row keeps its login for history.
            models.UniqueConstraint(fields=["broker", "server", "login"],
                                    condition=Q(unlinked_at__isnull=True),
                                    name="uniq_linked_broker_server_login"),
            # exactly one primary per member; also the index of a member's primary account
            # (GET /positions: accounts.access.primary_account_of)
            models.UniqueConstraint(fields=["user"], condition=Q(is_primary=True),
                                    name="one_primary_account_per_user"),
        ]
        indexes = [
            # sync_dispatch: WHERE is_active AND next_sync_at <= now ORDER BY next_sync_at
            models.Index(fields=["is_active", "next_sync_at"], name="acct_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.login}@{self.server}"


def validate_iana_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone, e.g. Etc/GMT-2 or "
                              "Europe/Athens") from exc


class TradeServer(models.Model):
    """A MetaTrader 5 trade server and its time zone.

    MetaTrader 5 reports position, deal and tick times in the trade server's wall-clock
    time. ``timezone`` (an IANA name, owner-editable) tells the adapter how to turn them
    into UTC, and sets the broker's trading day. It is detected when the first account on
    the server is linked: the last tick's time against UTC, rounded to 30 minutes
    (``detected_offset_minutes``); ``detection`` says how the zone was chosen.
    """

    # unique, so indexed: the gateway's server-zone lookup by name (accounts.gateways)
    name = models.CharField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_iana_zone],
                                help_text="IANA zone of the server clock, e.g. Etc/GMT-2 or "
                                          "Europe/Athens")
    detected_offset_minutes = models.IntegerField(
        null=True, blank=True, help_text="Server time − UTC at detection, minutes")
    detected_at = models.DateTimeField(null=True, blank=True)
    detection = models.CharField(max_length=200, blank=True,
                                 help_text="How the zone was chosen")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.timezone})"


class BaselineReset(AppendOnlyModel):
    """A restart of an account's high-water mark: after a liquidation, or by the owner."""

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT,
                                related_name="baseline_resets")
    previous_peak = money_field(null=True)
    new_peak = money_field()
    reason = models.CharField(max_length=200)
    changed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id}: {self.previous_peak} → {self.new_peak}"


class DeviceKey(models.Model):
    """A key an Expert Advisor signs its account snapshots with (HMAC-SHA256).

    The secret is shown once, at creation. An HMAC verifier needs the secret itself, so it
    is kept encrypted (FIELD_ENCRYPTION_KEYS), never in clear; ``fingerprint`` (SHA-256 of
    the secret) identifies it in the admin without revealing it.
    """

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE,
                                related_name="device_keys")
    name = models.CharField(max_length=64)
    # unique, so indexed: the signed push's lookup by X-Device-Key (device_request_verify)
    key_id = models.CharField(max_length=32, unique=True)
    secret_encrypted = models.TextField(editable=False)
    fingerprint = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key_id} ({self.name})"
