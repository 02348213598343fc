from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from accounts.selectors import account_sync_view
from accounts.serializers import SyncSerializer
from brokers.gateway import Side
from reconciliation.matching import Kind
from reconciliation.models import ExpectedTrade

PRICE = {"max_digits": 20, "decimal_places": 8, "min_value": Decimal("0.00000001")}


class ExpectedTradeInput(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    symbol = serializers.RegexField(r"^[A-Za-z0-9._#-]{1,32}$")
    side = serializers.ChoiceField(choices=Side.choices())
    volume = serializers.DecimalField(max_digits=16, decimal_places=4,
                                      min_value=Decimal("0.0001"), help_text="Lots")
    requested_price = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    sl = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    tp = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    magic = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1)
    signal_ref = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                       default="")
    approval_ref = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                         default="")
    entry_number = serializers.IntegerField(min_value=1, max_value=3, default=1)


class ExpectedTradeOutput(serializers.ModelSerializer):
    class Meta:
        model = ExpectedTrade
        fields = ["id", "account", "signal_ref", "approval_ref", "entry_number", "symbol",
                  "side", "volume", "requested_price", "sl", "tp", "magic", "tag", "status",
                  "ticket", "fill_price", "filled_volume", "created_at", "opened_at",
                  "closed_at"]
        read_only_fields = fields


class DivergenceOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[k.value for k in Kind])
    key = serializers.CharField()
    expected_trade_id = serializers.IntegerField(allow_null=True)
    ticket = serializers.IntegerField(allow_null=True)
    figures = serializers.DictField(child=serializers.CharField(allow_null=True))
    opened_at = serializers.DateTimeField(required=False)
    resolved_at = serializers.DateTimeField(source="created_at", required=False)


class AccountReconciliationOutput(serializers.Serializer):
    account_id = serializers.IntegerField(source="account.pk")
    login = serializers.CharField(source="account.login")
    last_synced_at = serializers.DateTimeField(source="account.last_synced_at",
                                               allow_null=True)
    sync = serializers.SerializerMethodField()
    open_divergences = DivergenceOutput(many=True)
    recent_resolved = DivergenceOutput(many=True)
    counts_by_kind = serializers.DictField(child=serializers.IntegerField())

    def get_sync(self, row: dict) -> dict:
        return SyncSerializer(account_sync_view(row["account"])).data


class UserReconciliationOutput(serializers.Serializer):
    user_id = serializers.IntegerField()
    accounts = AccountReconciliationOutput(many=True)
