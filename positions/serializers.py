"""Output shapes of the positions API (the seeds' fields). Money is a decimal string in
the account's currency; prices are decimal strings in the symbol's quote currency."""

from __future__ import annotations

from rest_framework import serializers

from accounts.serializers import SyncSerializer
from positions.models import Position
from positions.selectors import PERCENT_BASES, position_pnl_percent


class PositionOutput(serializers.ModelSerializer):
    instrument = serializers.CharField(source="symbol")
    volume = serializers.DecimalField(max_digits=16, decimal_places=4,
                                      help_text="Lots")
    entry_price = serializers.DecimalField(source="price_open", max_digits=20, decimal_places=8)
    current_price = serializers.DecimalField(source="price_current", max_digits=20,
                                             decimal_places=8)
    stop_loss = serializers.DecimalField(source="sl", max_digits=20, decimal_places=8,
                                         allow_null=True)
    take_profit = serializers.DecimalField(source="tp", max_digits=20, decimal_places=8,
                                           allow_null=True)
    pnl = serializers.DecimalField(source="profit", max_digits=20, decimal_places=2,
                                   help_text="Unrealized P&L, the broker's figure")
    pnl_percent = serializers.SerializerMethodField(help_text=PERCENT_BASES["pnl_percent"])

    class Meta:
        model = Position
        fields = ["id", "ticket", "instrument", "side", "volume", "entry_price",
                  "current_price", "stop_loss", "take_profit", "swap", "pnl", "pnl_percent",
                  "magic", "comment", "opened_at"]
        read_only_fields = fields

    def get_pnl_percent(self, position: Position) -> str | None:
        value = position_pnl_percent(position)
        return None if value is None else str(value)


class AccountPositionsOutput(serializers.Serializer):
    account_id = serializers.IntegerField(source="account.pk")
    login = serializers.CharField(source="account.login")
    currency = serializers.CharField(source="account.currency")
    balance = serializers.DecimalField(source="account.balance", max_digits=20,
                                       decimal_places=2, allow_null=True)
    equity = serializers.DecimalField(source="account.equity", max_digits=20,
                                      decimal_places=2, allow_null=True)
    margin = serializers.DecimalField(source="account.margin", max_digits=20,
                                      decimal_places=2, allow_null=True)
    free_margin = serializers.DecimalField(source="account.free_margin", max_digits=20,
                                           decimal_places=2, allow_null=True)
    margin_level = serializers.DecimalField(source="account.margin_level", max_digits=12,
                                            decimal_places=2, allow_null=True)
    drawdown_percent = serializers.DecimalField(source="account.drawdown_percent",
                                                max_digits=12, decimal_places=2,
                                                allow_null=True)
    peak_equity = serializers.DecimalField(source="account.peak_equity", max_digits=20,
                                           decimal_places=2, allow_null=True)
    open_positions_count = serializers.SerializerMethodField()
    total_pnl = serializers.DecimalField(max_digits=20, decimal_places=2)
    total_pnl_percent = serializers.DecimalField(max_digits=12, decimal_places=2,
                                                 allow_null=True)
    positions = PositionOutput(many=True)
    last_updated = serializers.DateTimeField(source="account.last_synced_at", allow_null=True)
    sync = SyncSerializer()
    percent_bases = serializers.SerializerMethodField()

    def get_open_positions_count(self, view: dict) -> int:
        return len(view["positions"])

    def get_percent_bases(self, view: dict) -> dict[str, str]:
        return PERCENT_BASES


class TradeOutput(serializers.Serializer):
    ticket = serializers.IntegerField()
    instrument = serializers.CharField(source="symbol")
    side = serializers.CharField()
    volume = serializers.DecimalField(max_digits=16, decimal_places=4)
    realized_pnl = serializers.DecimalField(max_digits=20, decimal_places=2)
    closed_at = serializers.DateTimeField()


class SummaryOutput(serializers.Serializer):
    account_id = serializers.IntegerField()
    currency = serializers.CharField()
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    realized_pnl = serializers.DecimalField(max_digits=20, decimal_places=2)
    closed_trades = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    win_rate_percent = serializers.DecimalField(max_digits=6, decimal_places=2,
                                                allow_null=True,
                                                help_text="wins / closed trades × 100")
    best_trade = TradeOutput(allow_null=True)
    worst_trade = TradeOutput(allow_null=True)
    open_pnl = serializers.DecimalField(max_digits=20, decimal_places=2)
    open_positions = serializers.IntegerField()


class PeriodInput(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": "must be after since"})
        return attrs


class EquityInput(PeriodInput):
    points = serializers.IntegerField(required=False, default=500, min_value=2,
                                      max_value=5000)


class EquityPointOutput(serializers.Serializer):
    taken_at = serializers.DateTimeField()
    equity = serializers.DecimalField(max_digits=20, decimal_places=2)
    balance = serializers.DecimalField(max_digits=20, decimal_places=2)
    margin_level = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    drawdown_percent = serializers.DecimalField(max_digits=12, decimal_places=2)


class EquityOutput(serializers.Serializer):
    account_id = serializers.IntegerField()
    currency = serializers.CharField()
    points = EquityPointOutput(many=True)


class PositionsQueryInput(serializers.Serializer):
    # "true" or "false" exactly, as the schema says (a BooleanField took "" for false);
    # allow_blank only so that an empty value reaches the check below and is refused
    force_refresh = serializers.CharField(required=False, default="false", allow_blank=True)

    def validate_force_refresh(self, value: str) -> bool:
        if value not in ("true", "false"):
            raise serializers.ValidationError('"true" or "false".')
        return value == "true"
