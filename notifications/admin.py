"""Alerts in the admin: read-only; undeliverable ones show their reason, and an action sends
failed or skipped ones again (through the service)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin import ReadOnlyAdmin
from notifications import services
from notifications.models import Alert, AlertPreference


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "account", "kind", "status", "failure_reason",
                    "last_error", "attempts", "silent", "sent_at")
    list_filter = ("status", "failure_reason", "kind", "silent")
    search_fields = ("user__username", "=user__telegram_id", "account__login", "text")
    list_select_related = ("user", "account")
    date_hierarchy = "created_at"
    actions = ("requeue",)

    @admin.action(description="Send the selected failed or skipped alerts again",
                  permissions=["requeue"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        count = services.alerts_requeue(alert_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} alert(s) queued again.", messages.SUCCESS)

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return request.user.is_staff


@admin.register(AlertPreference)
class AlertPreferenceAdmin(ReadOnlyAdmin):
    list_display = ("user", "kind", "mode", "updated_at")
    list_filter = ("kind", "mode")
    search_fields = ("user__username",)
    list_select_related = ("user",)
