from __future__ import annotations

from django.contrib import admin

from reconciliation.models import ExpectedTrade, OpenDivergence, ReconciliationLog


@admin.register(ExpectedTrade)
class ExpectedTradeAdmin(admin.ModelAdmin):
    list_display = ("tag", "account", "entry_number", "symbol", "side", "volume",
                    "requested_price", "sl", "tp", "status", "ticket", "filled_volume",
                    "fill_price", "created_at")
    list_filter = ("status", "side", "symbol")
    search_fields = ("tag", "signal_ref", "approval_ref", "account__login", "ticket")
    list_select_related = ("account",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in ExpectedTrade._meta.fields]

    def has_add_permission(self, request) -> bool:  # registered through the service/API
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


SKIP = {"tag", "ticket", "symbol", "side"}  # already in their own columns


def figures_line(figures: dict) -> str:
    """A divergence's figures on one line: "reason=sl close_price=1.08942 gap_points=663"."""
    line = " ".join(f"{k}={v}" for k, v in figures.items() if k not in SKIP and v != "")
    return line if len(line) <= 120 else line[:119] + "…"


@admin.register(OpenDivergence)
class OpenDivergenceAdmin(admin.ModelAdmin):
    list_display = ("kind", "account", "ticket", "expected_trade", "opened_at", "what")
    list_filter = ("kind",)
    search_fields = ("account__login", "key", "ticket")
    list_select_related = ("account", "expected_trade")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Figures")
    def what(self, obj: OpenDivergence) -> str:
        return figures_line(obj.figures)


@admin.register(ReconciliationLog)
class ReconciliationLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "account", "kind", "event", "ticket", "expected_trade",
                    "what")
    list_filter = ("kind", "event", "account")
    search_fields = ("account__login", "key", "ticket")
    list_select_related = ("account", "expected_trade")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Figures")
    def what(self, obj: ReconciliationLog) -> str:
        return figures_line(obj.figures)
