from __future__ import annotations

from decimal import Decimal

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from positions.models import (
    CashFlow,
    DispatcherHeartbeat,
    EquitySnapshot,
    Instrument,
    Position,
    SyncLog,
)


def plain(value: Decimal | None) -> str:
    """1.07175000 → 1.07175; 2.0000 → 2 (prices and lots without padding zeros)."""
    if value is None:
        return "-"
    text = format(value.normalize(), "f")
    return text



@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ("ticket", "account", "symbol", "side", "lots", "open_price", "price",
                    "pnl", "status", "close_reason", "opened_at")
    list_filter = ("status", "side", "symbol", "close_reason")
    search_fields = ("ticket", "account__login", "comment")
    list_select_related = ("account",)
    date_hierarchy = "opened_at"

    @admin.display(description="Volume (lots)", ordering="volume")
    def lots(self, obj: Position) -> str:
        return plain(obj.volume)

    @admin.display(description="Open", ordering="price_open")
    def open_price(self, obj: Position) -> str:
        return plain(obj.price_open)

    @admin.display(description="Current / close")
    def price(self, obj: Position) -> str:
        return plain(obj.close_price if obj.status == Position.Status.CLOSED
                     else obj.price_current)

    @admin.display(description="P&L (unrealized / realized)")
    def pnl(self, obj: Position) -> str:
        value = obj.realized_pnl if obj.status == Position.Status.CLOSED else obj.profit
        return "-" if value is None else f"{value:,.2f} {obj.account.currency}"


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(ReadOnlyAdmin):
    list_display = ("account", "taken_at", "balance", "equity", "margin_level",
                    "peak_equity", "drawdown_percent", "cash_flow", "open_positions")
    list_select_related = ("account",)
    search_fields = ("account__login",)
    date_hierarchy = "taken_at"


@admin.register(CashFlow)
class CashFlowAdmin(ReadOnlyAdmin):
    """Balance operations read from the deal history; each moved the high-water mark by
    its amount (except the baseline ones, seen before the first peak)."""

    list_display = ("time", "account", "kind", "amount", "comment", "baseline", "ticket")
    list_filter = ("kind", "baseline")
    list_select_related = ("account",)
    search_fields = ("account__login", "ticket", "comment")
    date_hierarchy = "time"


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyAdmin):
    list_display = ("account", "started_at", "result", "duration_ms", "positions_opened",
                    "positions_updated", "positions_closed", "error_code")
    list_filter = ("result", "error_code")
    list_select_related = ("account",)
    search_fields = ("account__login",)
    date_hierarchy = "started_at"


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "server", "contract_size", "tick_size", "volume_min",
                    "volume_step", "volume_max", "currency_profit", "filling_modes")


@admin.register(DispatcherHeartbeat)
class DispatcherHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "ticks", "last_tick_at", "last_dispatched")
