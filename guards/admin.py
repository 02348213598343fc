from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from guards import services
from guards.models import (
    AccountGuardState,
    CloseAttempt,
    CloseRequest,
    DrawdownAlert,
    GuardAlert,
    GuardOverride,
    GuardSettings,
    GuardSettingsChange,
    LiquidationEpisode,
    PlatformState,
    PlatformStateChange,
)


@admin.register(PlatformState)
class PlatformStateAdmin(admin.ModelAdmin):
    """The kill switch. Saving goes through the service: locked, audited."""

    list_display = ("state", "reason", "changed_by", "changed_at")
    fields = ("state", "reason")

    def has_add_permission(self, request) -> bool:
        return not PlatformState.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        services.platform_state_set(state=form.cleaned_data["state"], changed_by=request.user,
                                    reason=form.cleaned_data.get("reason", ""))


@admin.register(GuardSettings)
class GuardSettingsAdmin(admin.ModelAdmin):
    list_display = ("max_drawdown_percent", "drawdown_alert_threshold_percent", "min_equity",
                    "pre_liquidation_warning_seconds", "daily_loss_percent",
                    "max_loss_percent", "trailing_drawdown_percent", "updated_at")
    exclude = ("updated_by",)

    def has_add_permission(self, request) -> bool:
        return not GuardSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        # through the service: locked and audited there, never here
        row = services.guard_settings_update(
            changed_by=request.user, **{name: form.cleaned_data[name]
                                        for name in form.changed_data})
        obj.pk = row.pk  # the admin's change message names the saved row


@admin.register(GuardOverride)
class GuardOverrideAdmin(admin.ModelAdmin):
    list_display = ("account", "max_drawdown_percent", "drawdown_alert_threshold_percent",
                    "min_equity", "daily_loss_percent", "max_loss_percent")
    raw_id_fields = ("account",)

    def save_model(self, request, obj, form, change) -> None:
        # through the service: locked and audited there, never here
        row = services.guard_override_update(
            account_id=form.cleaned_data["account"].pk, changed_by=request.user,
            **{name: form.cleaned_data[name] for name in form.changed_data
               if name != "account"})
        obj.pk = row.pk


@admin.register(AccountGuardState)
class AccountGuardStateAdmin(ReadOnlyAdmin):
    list_display = ("account", "level", "initial_balance", "day_start_balance",
                    "breached_rules", "trading_blocked", "checked_at")
    list_filter = ("level", "trading_blocked")
    list_select_related = ("account",)


@admin.register(DrawdownAlert)
class DrawdownAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "account", "level_from", "level_to", "reason",
                    "drawdown_percent", "equity", "peak_equity")
    list_filter = ("level_to", "reason")
    list_select_related = ("account",)
    date_hierarchy = "created_at"


@admin.register(LiquidationEpisode)
class LiquidationEpisodeAdmin(ReadOnlyAdmin):
    list_display = ("pk", "account", "status", "reason", "started_at", "recheck_at",
                    "finished_at", "outcome")
    list_filter = ("status", "reason")
    list_select_related = ("account",)


class CloseAttemptInline(admin.TabularInline):
    model = CloseAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "outcome", "retcode", "comment", "price", "volume",
                       "realized_pnl", "duration_ms", "created_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CloseRequest)
class CloseRequestAdmin(ReadOnlyAdmin):
    list_display = ("pk", "account", "ticket", "symbol", "reason", "status", "attempts",
                    "last_retcode", "close_price", "realized_pnl", "created_at")
    list_filter = ("status", "reason")
    search_fields = ("ticket", "account__login", "key")
    list_select_related = ("account",)
    inlines = [CloseAttemptInline]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected closes (stop retrying)")
    def cancel(self, request, queryset) -> None:
        done = sum(services.close_request_cancel(close_request=c, cancelled_by=request.user)
                   for c in queryset)
        self.message_user(request, f"{done} close request(s) cancelled.")


@admin.register(GuardAlert)
class GuardAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "account", "kind", "message")
    list_filter = ("kind",)
    list_select_related = ("account",)
    date_hierarchy = "created_at"


@admin.register(PlatformStateChange)
class PlatformStateChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "previous", "new", "changed_by", "reason")


@admin.register(GuardSettingsChange)
class GuardSettingsChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "scope", "changed_by", "previous", "new")
