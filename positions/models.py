"""Positions as last seen at the broker, the equity history and the sync audit trail.

Money is in the account's currency (``TradingAccount.currency``); prices are in the
symbol's quote currency; volume is in lots.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from accounts.models import TradingAccount, money_field, percent_field
from brokers.gateway import Side


def price_field(**kwargs: Any) -> models.DecimalField:
    """A price in the symbol's quote currency: 20 digits, 8 decimals."""
    return models.DecimalField(max_digits=20, decimal_places=8, **kwargs)


def volume_field(**kwargs: Any) -> models.DecimalField:
    """Volume in lots: 16 digits, 4 decimals."""
    return models.DecimalField(max_digits=16, decimal_places=4, **kwargs)


class Position(models.Model):
    Side = Side  # brokers.gateway.Side: the project's one side type

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class CloseReason(models.TextChoices):
        CLIENT = "client", "Closed by hand"
        EXPERT = "expert", "Closed by the bot"
        SL = "sl", "Stop loss"
        TP = "tp", "Take profit"
        SO = "so", "Stop-out"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Closing deal not found yet"

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE,
                                related_name="positions")
    ticket = models.BigIntegerField()
    identifier = models.BigIntegerField(
        default=0, help_text="MetaTrader 5 position identifier: its deals' position_id "
                             "(never changes, unlike the ticket); 0: same as the ticket")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices())
    volume = volume_field()
    price_open = price_field()
    price_current = price_field()
    sl = price_field(null=True, blank=True)
    tp = price_field(null=True, blank=True)
    swap = money_field(default=0)
    profit = money_field(default=0, help_text="Unrealized P&L (broker's)")
    magic = models.BigIntegerField(default=0)
    comment = models.CharField(max_length=64, blank=True)
    opened_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_price = price_field(null=True, blank=True)
    close_reason = models.CharField(max_length=8, choices=CloseReason.choices, blank=True)
    realized_pnl = money_field(null=True, blank=True,
                                       help_text="Net of swap, commission and fee")
    last_synced_at = models.DateTimeField()

    class Meta:
        constraints = [
            # the sync's upsert: INSERT ... ON CONFLICT (account, ticket) of a batch's positions
            models.UniqueConstraint(fields=["account", "ticket"], name="uniq_account_ticket"),
        ]
        indexes = [
            # sync: the open positions of a batch of accounts
            models.Index(fields=["account", "status"], name="pos_account_status_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket} {self.side} {self.volume} {self.symbol}"


class EquitySnapshot(models.Model):
    """One row per successful sync: the account's figures and its high-water mark."""

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE,
                                related_name="equity_snapshots")
    taken_at = models.DateTimeField()
    balance = money_field()
    equity = money_field()
    margin = money_field()
    free_margin = money_field()
    margin_level = percent_field(null=True, blank=True)
    profit = money_field()
    peak_equity = money_field()
    drawdown_percent = percent_field()
    open_positions = models.PositiveIntegerField()
    cash_flow = money_field(default=0, help_text="Balance operations seen in this sync "
                                                 "(deposits − withdrawals …), moved the peak")
    identity_residual = money_field(
        null=True, blank=True,
        help_text="equity − (balance + credit + Σ position profit and swap) of this read")

    class Meta:
        indexes = [
            # equity series of one account, newest first
            models.Index(fields=["account", "-taken_at"], name="equity_account_time_idx"),
            # the dashboard's equity sparkline: every account's snapshots in one time bucket
            models.Index(fields=["taken_at"], name="equity_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} @ {self.taken_at:%Y-%m-%d %H:%M:%S}: equity {self.equity}"


class CashFlow(models.Model):
    """A balance operation read from the deal history: a deposit, withdrawal, credit, bonus,
    charge, correction, commission, interest, dividend or tax (MetaTrader 5: the deal types
    other than buy and sell). ``amount`` in the account currency, positive in, negative out.
    It moved the high-water mark by ``amount`` unless ``baseline`` (seen at the first sync,
    before there was a high-water mark)."""

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE,
                                related_name="cash_flows")
    ticket = models.BigIntegerField(help_text="Deal ticket")
    kind = models.CharField(max_length=12)
    amount = money_field()
    comment = models.CharField(max_length=64, blank=True)
    time = models.DateTimeField(help_text="Deal time, UTC")
    baseline = models.BooleanField(default=False,
                                   help_text="Before the first sync: did not move the peak")
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            # a deal is counted once, however many syncs read it
            models.UniqueConstraint(fields=["account", "ticket"], name="uniq_cash_flow_deal"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on {self.account_id}"


class SyncLog(models.Model):
    """One row per sync attempt, good or failed: what changed and how long it took."""

    class Result(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"
        # an EA push that does not add up (positions.plausibility): stored, never applied
        REJECTED = "rejected", "Rejected"

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE,
                                related_name="sync_logs")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    result = models.CharField(max_length=8, choices=Result.choices)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    before = models.JSONField(default=dict, help_text="Figures before this sync")
    after = models.JSONField(default=dict, help_text="Figures after this sync")
    positions_opened = models.PositiveIntegerField(default=0)
    positions_updated = models.PositiveIntegerField(default=0)
    positions_closed = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # admin and health: the latest attempts of one account
            models.Index(fields=["account", "-started_at"], name="synclog_account_time_idx"),
            # retention: DELETE WHERE started_at < cutoff
            models.Index(fields=["started_at"], name="synclog_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} @ {self.started_at:%Y-%m-%d %H:%M:%S}: {self.result}"


class Instrument(models.Model):
    """A symbol's trading rules at one broker server (MetaTrader 5: SymbolInfo)."""

    server = models.CharField(max_length=100)
    symbol = models.CharField(max_length=32)
    digits = models.PositiveSmallIntegerField()
    point = price_field()
    contract_size = models.DecimalField(max_digits=20, decimal_places=4)
    tick_size = price_field()
    volume_min = volume_field()
    volume_step = volume_field()
    volume_max = volume_field()
    currency_base = models.CharField(max_length=8)
    currency_profit = models.CharField(max_length=8)
    currency_margin = models.CharField(max_length=8)
    filling_modes = models.CharField(max_length=16, blank=True, help_text="fok, ioc")
    calc_mode = models.CharField(max_length=8)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # sync and push: the known instruments of a batch's servers (server, symbol)
            models.UniqueConstraint(fields=["server", "symbol"], name="uniq_server_symbol"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol}@{self.server}"


class DispatcherHeartbeat(models.Model):
    """A single row the sync dispatcher stamps on every tick, so the 1 s beat is visible."""

    # unique, so indexed: the dispatcher's stamp and /healthz's read by name ("sync")
    name = models.CharField(max_length=32, unique=True)
    ticks = models.BigIntegerField(default=0)
    last_tick_at = models.DateTimeField(null=True)
    last_dispatched = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.ticks} ticks"


class BeatLease(models.Model):
    """Who runs the one Celery beat: a second beat started by mistake would double every
    schedule, so the beat holding an unexpired lease sends and any other idles
    (``config.beat.SingletonScheduler``)."""

    # unique, so indexed: beat_lease_hold's conditional UPDATE by name
    name = models.CharField(max_length=32, unique=True)
    holder = models.CharField(max_length=128)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder} until {self.expires_at:%H:%M:%S}"
