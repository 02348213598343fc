from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from brokers.gateway import Side
from risk.models import RiskConfiguration, RiskConfigurationChange

PRICE = {"max_digits": 20, "decimal_places": 8, "min_value": Decimal("0.00000001")}


TRADING_STATUSES = ["active", "reducing", "halted"]  # guards.models.PlatformState.State


class RiskConfigOutput(serializers.ModelSerializer):
    updated_by = serializers.CharField(source="updated_by.username", default=None,
                                       allow_null=True)
    trading_status = serializers.SerializerMethodField(
        help_text="The platform's kill switch: active, reducing (no new trades) or halted")

    class Meta:
        model = RiskConfiguration
        fields = ["fixed_risk_percent", "entry_split_1_percent", "entry_split_2_percent",
                  "entry_split_3_percent", "margin_buffer_percent",
                  "version", "updated_by", "updated_at", "trading_status"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=TRADING_STATUSES))
    def get_trading_status(self, config: RiskConfiguration) -> str:
        return self.context["trading_status"]


class RiskConfigChangedOutput(RiskConfigOutput):
    """The configuration after a change, with the risk % before and after it."""

    previous_risk_percent = serializers.DecimalField(max_digits=8, decimal_places=2,
                                                     source="previous_fixed_risk_percent")
    new_risk_percent = serializers.DecimalField(max_digits=8, decimal_places=2,
                                                source="fixed_risk_percent")

    class Meta(RiskConfigOutput.Meta):
        fields = [*RiskConfigOutput.Meta.fields, "previous_risk_percent", "new_risk_percent"]
        read_only_fields = fields


class RiskConfigInput(serializers.Serializer):
    """Any subset; bounds are checked by the service (422 with the accepted bounds)."""

    fixed_risk_percent = serializers.DecimalField(max_digits=8, decimal_places=2,
                                                  required=False,
                                                  help_text="0.1–50, % of the balance")
    entry_split_1_percent = serializers.DecimalField(max_digits=6, decimal_places=2,
                                                     required=False)
    entry_split_2_percent = serializers.DecimalField(max_digits=6, decimal_places=2,
                                                     required=False)
    entry_split_3_percent = serializers.DecimalField(max_digits=6, decimal_places=2,
                                                     required=False)
    margin_buffer_percent = serializers.DecimalField(max_digits=6, decimal_places=2,
                                                     required=False)


class RiskChangeOutput(serializers.ModelSerializer):
    changed_by = serializers.CharField(source="changed_by.username", default=None,
                                       allow_null=True)

    class Meta:
        model = RiskConfigurationChange
        fields = ["version", "previous", "new", "changed_by", "source", "changed_at"]
        read_only_fields = fields


class PositionSizeInput(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    signal_id = serializers.CharField(max_length=64)
    instrument = serializers.RegexField(r"^[A-Za-z0-9._#-]{1,32}$")
    side = serializers.ChoiceField(choices=[side.value for side in Side])
    entry_price = serializers.DecimalField(**PRICE)
    stop_loss = serializers.DecimalField(**PRICE)
    take_profit = serializers.DecimalField(**PRICE, required=False, allow_null=True)


MONEY = {"max_digits": 20, "decimal_places": 2}
LOTS = {"max_digits": 16, "decimal_places": 4}


class PositionSizeOutput(serializers.Serializer):
    """The seeds' fields. Money in the account currency; volume in lots."""

    setup_approved = serializers.BooleanField()
    rejection_reason = serializers.CharField(allow_null=True)
    rejection_detail = serializers.CharField(allow_blank=True)
    global_risk_percent = serializers.DecimalField(max_digits=6, decimal_places=2)
    allocated_risk_amount = serializers.DecimalField(**MONEY)
    volume_entry_1 = serializers.DecimalField(**LOTS)
    volume_entry_2 = serializers.DecimalField(**LOTS)
    volume_entry_3 = serializers.DecimalField(**LOTS)
    total_volume = serializers.DecimalField(**LOTS)
    estimated_margin_entry_1 = serializers.DecimalField(**MONEY)
    estimated_margin_entry_2 = serializers.DecimalField(**MONEY)
    estimated_margin_entry_3 = serializers.DecimalField(**MONEY)
    total_estimated_margin = serializers.DecimalField(**MONEY)
    available_margin = serializers.DecimalField(**MONEY)
    margin_utilization_percent = serializers.DecimalField(max_digits=12, decimal_places=2,
                                                          allow_null=True)
    loss_per_lot = serializers.DecimalField(**MONEY, allow_null=True)
    tick_value_used = serializers.DecimalField(
        max_digits=28, decimal_places=10, allow_null=True,
        help_text="The tick value the stop was sized with: account currency per tick of 1 "
                  "lot; null when refused before the symbol's rules were read")
    tick_value_source = serializers.ChoiceField(
        choices=["tick_value_loss", "tick_value"], allow_null=True,
        help_text="tick_value_loss (MetaTrader 5: trade_tick_value_loss, when the broker "
                  "reports it) or tick_value")
    config_version = serializers.IntegerField()
    log_id = serializers.IntegerField()
    expected_trades = serializers.ListField(child=serializers.CharField())
