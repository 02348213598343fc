from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Q

from accounts.models import BaselineReset, DeviceKey, Terminal, TradeServer, TradingAccount, User
from accounts.terminals import terminal_healthy
from config.admin import ReadOnlyAdmin


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "first_name", "role", "telegram_id", "is_staff")
    list_filter = ("role", "is_staff", "is_active")
    search_fields = ("username", "first_name", "last_name", "email", "telegram_id")
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Platform", {"fields": ("role", "telegram_id")}),
    )


@admin.register(TradingAccount)
class TradingAccountAdmin(admin.ModelAdmin):
    list_display = (
        "login", "user", "broker", "leverage_ratio", "balance_shown", "equity_shown",
        "margin_level_shown",
        "drawdown_shown", "sync_status", "last_synced_at",
    )
    list_filter = ("sync_status", "broker", "currency", "credentials_read_only", "is_active")
    search_fields = ("login", "server", "broker_name", "user__username")
    list_select_related = ("user",)
    ordering = ("user__username", "login")
    # credentials_encrypted is not editable and never shown
    readonly_fields = (
        "currency", "leverage", "balance", "credit", "equity", "margin", "free_margin",
        "margin_level", "profit", "peak_equity", "drawdown_percent", "baseline_started_at",
        "baseline_reset_requested", "cash_flow_total", "sync_status",
        "sync_error_code", "sync_error_message", "last_synced_at", "last_sync_attempt_at",
        "consecutive_failures", "next_sync_at", "verified_at", "created_at",
    )
    fieldsets = (
        (None, {"fields": ("user", "broker", "broker_name", "server", "login", "is_primary",
                           "is_active", "credentials_read_only", "verified_at", "created_at")}),
        ("Live state", {"fields": ("currency", "leverage", "balance", "credit", "equity",
                                   "margin", "free_margin", "margin_level", "profit",
                                   "peak_equity", "drawdown_percent", "baseline_started_at",
                                   "baseline_reset_requested", "cash_flow_total")}),
        ("Sync", {"fields": ("sync_status", "sync_error_code", "sync_error_message",
                             "last_synced_at", "last_sync_attempt_at", "consecutive_failures",
                             "sync_cadence_seconds", "next_sync_at")}),
    )

    actions = ["baseline_reset"]

    def has_add_permission(self, request) -> bool:  # accounts are linked through the service
        return False

    @admin.action(description="Restart the high-water mark at the current equity (audited)")
    def baseline_reset(self, request, queryset) -> None:
        from accounts.services import account_baseline_reset
        from config.errors import ApplicationError

        done = 0
        for account in queryset:
            try:
                account_baseline_reset(account=account, changed_by=request.user,
                                       reason="reset by the owner in the admin")
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{account}: {exc}", level="warning")
        self.message_user(request, f"{done} baseline(s) restarted.")

    @admin.display(description="Leverage", ordering="leverage")
    def leverage_ratio(self, obj: TradingAccount) -> str:
        return f"1:{obj.leverage}" if obj.leverage else "-"

    @admin.display(description="Balance", ordering="balance")
    def balance_shown(self, obj: TradingAccount) -> str:
        return "-" if obj.balance is None else f"{obj.balance:,.2f} {obj.currency}"

    @admin.display(description="Equity", ordering="equity")
    def equity_shown(self, obj: TradingAccount) -> str:
        return "-" if obj.equity is None else f"{obj.equity:,.2f} {obj.currency}"

    @admin.display(description="Margin level", ordering="margin_level")
    def margin_level_shown(self, obj: TradingAccount) -> str:
        return "-" if obj.margin_level is None else f"{obj.margin_level:,.2f} %"

    @admin.display(description="Drawdown (of peak)", ordering="drawdown_percent")
    def drawdown_shown(self, obj: TradingAccount) -> str:
        return "-" if obj.drawdown_percent is None else f"{obj.drawdown_percent:.2f} %"


@admin.register(DeviceKey)
class DeviceKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "name", "account", "fingerprint", "created_at", "last_used_at",
                    "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("key_id", "name", "account__login")
    list_select_related = ("account",)
    readonly_fields = ("key_id", "account", "name", "fingerprint", "created_by", "created_at",
                       "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:  # created by the member, secret shown once
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset) -> None:
        from accounts.services import device_key_revoke

        for key in queryset:
            device_key_revoke(key=key)


@admin.register(TradeServer)
class TradeServerAdmin(admin.ModelAdmin):
    """Trade servers and their time zones: MetaTrader 5 times are the server's wall clock;
    the zone turns them into UTC and sets the broker's trading day."""

    list_display = ("name", "timezone", "detected_offset_minutes", "detection", "detected_at",
                    "updated_at")
    search_fields = ("name",)
    readonly_fields = ("detected_offset_minutes", "detected_at", "detection", "updated_at")


@admin.register(BaselineReset)
class BaselineResetAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "account", "previous_peak", "new_peak", "reason",
                    "changed_by")
    list_select_related = ("account", "changed_by")
    search_fields = ("account__login", "reason")


@admin.register(Terminal)
class TerminalAdmin(admin.ModelAdmin):
    """The owner's registry of terminals with their health. The token is never stored or
    shown: ``token_env`` names the environment variable that holds it."""

    list_display = ("name", "kind", "endpoint", "enabled", "up", "accounts_held", "capacity",
                    "consecutive_failures", "last_ok_at", "latency_ms", "last_error")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "url", "host")
    ordering = ("name",)
    readonly_fields = ("last_ok_at", "last_failure_at", "consecutive_failures", "latency_ms",
                       "last_error", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "capacity", "servers")}),
        ("Endpoint", {"fields": ("url", "host", "port", "client_id", "token_env")}),
        ("Health", {"fields": readonly_fields}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            held=Count("accounts", filter=Q(accounts__is_active=True)))

    @admin.display(description="Endpoint")
    def endpoint(self, obj: Terminal) -> str:
        return obj.url or f"{obj.host}:{obj.port}"

    @admin.display(description="Up", boolean=True)
    def up(self, obj: Terminal) -> bool:
        return terminal_healthy(obj)

    @admin.display(description="Accounts", ordering="held")
    def accounts_held(self, obj: Terminal) -> int:
        return obj.held
