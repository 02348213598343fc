from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import TradingAccount, User


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
        "login", "server", "user", "currency", "leverage", "balance", "equity",
        "margin_level", "drawdown_percent", "sync_status", "last_synced_at", "is_primary",
    )
    list_filter = ("sync_status", "broker", "currency", "credentials_read_only", "is_active")
    search_fields = ("login", "server", "broker_name", "user__username")
    list_select_related = ("user",)
    ordering = ("user__username", "login")
    # credentials_encrypted is not editable and never shown
    readonly_fields = (
        "currency", "leverage", "balance", "credit", "equity", "margin", "free_margin",
        "margin_level", "profit", "peak_equity", "drawdown_percent", "sync_status",
        "sync_error_code", "sync_error_message", "last_synced_at", "last_sync_attempt_at",
        "consecutive_failures", "next_sync_at", "verified_at", "created_at",
    )
    fieldsets = (
        (None, {"fields": ("user", "broker", "broker_name", "server", "login", "is_primary",
                           "is_active", "credentials_read_only", "verified_at", "created_at")}),
        ("Live state", {"fields": ("currency", "leverage", "balance", "credit", "equity",
                                   "margin", "free_margin", "margin_level", "profit",
                                   "peak_equity", "drawdown_percent")}),
        ("Sync", {"fields": ("sync_status", "sync_error_code", "sync_error_message",
                             "last_synced_at", "last_sync_attempt_at", "consecutive_failures",
                             "sync_cadence_seconds", "next_sync_at")}),
    )

    def has_add_permission(self, request) -> bool:  # accounts are linked through the service
        return False
