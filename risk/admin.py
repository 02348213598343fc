from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from config.admin import ReadOnlyAdmin
from config.errors import ApplicationError
from risk import services
from risk.models import RiskConfiguration, RiskConfigurationChange, TradeSetupRiskLog


class RiskConfigurationForm(forms.ModelForm):
    class Meta:
        model = RiskConfiguration
        fields = list(services.EDITABLE)

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        try:  # the same validation as the API
            services.risk_configuration_validate(
                {name: cleaned.get(name) for name in services.EDITABLE})
        except ApplicationError as exc:
            raise ValidationError(exc.message, code=exc.code) from None
        return cleaned


@admin.register(RiskConfiguration)
class RiskConfigurationAdmin(admin.ModelAdmin):
    form = RiskConfigurationForm
    list_display = ("fixed_risk_percent", "entry_split_1_percent", "entry_split_2_percent",
                    "entry_split_3_percent", "margin_buffer_percent",
                    "version", "updated_by", "updated_at")

    def has_add_permission(self, request) -> bool:
        return not RiskConfiguration.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        # Through the service: the same validation, the row lock, the audit row, the cache.
        services.risk_configuration_update(
            changed_by=request.user, source="admin",
            **{name: form.cleaned_data[name] for name in services.EDITABLE})



@admin.register(RiskConfigurationChange)
class RiskConfigurationChangeAdmin(ReadOnlyAdmin):
    list_display = ("version", "changed_at", "changed_by", "source", "previous", "new")
    list_select_related = ("changed_by",)


@admin.register(TradeSetupRiskLog)
class TradeSetupRiskLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "account", "signal_id", "instrument", "side",
                    "global_risk_percent", "tick_value_used", "tick_value_source",
                    "setup_approved", "rejection_reason", "total_volume")
    list_filter = ("setup_approved", "rejection_reason", "instrument")
    search_fields = ("signal_id", "account__login")
    list_select_related = ("account",)
    date_hierarchy = "created_at"
