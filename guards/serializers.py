"""Response shapes of the guard API (``guards.selectors.guards_overview``). Money is in
the account's currency, as decimal strings; times are UTC."""

from __future__ import annotations

from rest_framework import serializers


class ThresholdsOutput(serializers.Serializer):
    alert_percent = serializers.CharField()
    max_percent = serializers.CharField()
    min_equity = serializers.CharField()


class LiquidationOutput(serializers.Serializer):
    status = serializers.CharField()
    reason = serializers.CharField()
    recheck_at = serializers.DateTimeField()


class GuardAlertOutput(serializers.Serializer):
    kind = serializers.CharField()
    message = serializers.CharField()
    created_at = serializers.DateTimeField()


class GuardCloseOutput(serializers.Serializer):
    ticket = serializers.IntegerField()
    reason = serializers.CharField()
    status = serializers.CharField()
    close_price = serializers.CharField(allow_null=True)
    realized_pnl = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class AccountGuardOutput(serializers.Serializer):
    account_id = serializers.IntegerField()
    login = serializers.CharField()
    level = serializers.CharField(help_text="ok, warning or critical")
    drawdown_percent = serializers.CharField(allow_null=True,
                                             help_text="% of peak equity (high-water mark)")
    equity = serializers.CharField(allow_null=True)
    peak_equity = serializers.CharField(allow_null=True)
    baseline_started_at = serializers.DateTimeField(allow_null=True)
    cash_flow_total = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    thresholds = ThresholdsOutput()
    trading_blocked = serializers.BooleanField()
    last_check = serializers.DateTimeField(allow_null=True)
    read_only = serializers.BooleanField()
    liquidation = LiquidationOutput(allow_null=True)
    alerts = GuardAlertOutput(many=True)
    close_requests = GuardCloseOutput(many=True)


class GuardsOverviewOutput(serializers.Serializer):
    platform_state = serializers.CharField()
    accounts = AccountGuardOutput(many=True)
