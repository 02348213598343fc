from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from reconciliation.models import ExpectedTrade, OpenDivergence, ReconciliationLog


@admin.register(ExpectedTrade)
class ExpectedTradeAdmin(ReadOnlyAdmin):  # registered through the service/API
    list_display = ("tag", "account", "entry_number", "symbol", "side", "volume",
                    "requested_price", "sl", "tp", "status", "ticket", "filled_volume",
                    "fill_price", "created_at")
    list_filter = ("status", "side", "symbol")
    search_fields = ("tag", "signal_ref", "approval_ref", "account__login", "ticket")
    list_select_related = ("account",)
    date_hierarchy = "created_at"


SKIP = {"tag", "ticket", "symbol", "side"}  # already in their own columns


def figures_line(figures: dict) -> str:
    """A divergence's figures on one line: "reason=sl close_price=1.08942 gap_points=663"."""
    line = " ".join(f"{k}={v}" for k, v in figures.items() if k not in SKIP and v != "")
    return line if len(line) <= 120 else line[:119] + "…"


@admin.register(OpenDivergence)
class OpenDivergenceAdmin(ReadOnlyAdmin):
    list_display = ("kind", "account", "ticket", "expected_trade", "opened_at", "what")
    list_filter = ("kind",)
    search_fields = ("account__login", "key", "ticket")
    list_select_related = ("account", "expected_trade")

    @admin.display(description="Figures")
    def what(self, obj: OpenDivergence) -> str:
        return figures_line(obj.figures)


@admin.register(ReconciliationLog)
class ReconciliationLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "account", "kind", "event", "ticket", "expected_trade",
                    "what")
    list_filter = ("kind", "event", "account")
    search_fields = ("account__login", "key", "ticket")
    list_select_related = ("account", "expected_trade")
    date_hierarchy = "created_at"

    @admin.display(description="Figures")
    def what(self, obj: ReconciliationLog) -> str:
        return figures_line(obj.figures)
