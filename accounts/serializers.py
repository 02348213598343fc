"""Input and output shapes of the accounts API. Credentials go in, never out."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import TradingAccount
from accounts.selectors import account_sync_view

MAX_LOGIN = 2**63 - 1


class AccountLinkInput(serializers.Serializer):
    """MetaTrader 5 (``broker`` "mt5", the default): ``login``, ``password``, ``server``.
    Interactive Brokers (``broker`` "ibkr"): ``account_id`` and optionally ``gateway`` and
    ``read_only``; no password (IB Gateway holds the login)."""

    REQUIRED = {"mt5": ("login", "password", "server"), "ibkr": ("account_id",)}

    broker = serializers.ChoiceField(choices=TradingAccount.Broker.choices, default="mt5",
                                     help_text="mt5 (default) or ibkr")
    login = serializers.IntegerField(min_value=1, max_value=MAX_LOGIN, required=False,
                                     help_text="MT5 account number (mt5)")
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True,
                                     required=False,
                                     help_text="Investor (read-only) or master password (mt5)")
    server = serializers.CharField(max_length=100, required=False,
                                   help_text="Broker server, e.g. ICMarkets-Demo (mt5)")
    broker_name = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                        default="")
    account_id = serializers.RegexField(
        r"^D?U\d{4,12}$", max_length=16, required=False,
        error_messages={"invalid": "An IB account id looks like U1234567 or DU1234567."},
        help_text="IB account id, e.g. U1234567 or DU1234567 (paper) (ibkr)")
    gateway = serializers.CharField(
        max_length=64, required=False, default="", allow_blank=True,
        help_text="Name of the IB Gateway serving the account (ibkr); empty: the one "
                  "registered for it")
    read_only = serializers.BooleanField(
        required=False, default=False,
        help_text="Watched, never closed by the guards (ibkr; mt5 reads it from the broker)")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        missing = {name: [serializers.ErrorDetail("This field is required.", code="required")]
                   for name in self.REQUIRED[attrs["broker"]] if name not in attrs}
        if missing:
            raise serializers.ValidationError(missing)
        return attrs

    def link_arguments(self) -> tuple[str, dict[str, Any]]:
        """(broker, the keyword arguments of its link service) from the validated data."""
        data = dict(self.validated_data)
        broker = data.pop("broker")
        if broker == "ibkr":
            return broker, {k: data[k] for k in ("account_id", "gateway", "read_only",
                                                  "broker_name")}
        return broker, {k: data[k] for k in ("login", "password", "server", "broker_name")}


class SyncSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=TradingAccount.SyncStatus.choices)
    # a duration, not money: a decimal sent as a JSON number (coerce_to_string=False)
    age_seconds = serializers.DecimalField(max_digits=14, decimal_places=1,
                                           coerce_to_string=False, allow_null=True,
                                           help_text="Seconds since the last good sync")
    last_synced_at = serializers.DateTimeField(allow_null=True)
    error_code = serializers.CharField()
    error_message = serializers.CharField()


class AccountOutput(serializers.ModelSerializer):
    """A linked account with its last synced figures, in ``currency``."""

    read_only = serializers.BooleanField(source="credentials_read_only",
                                         help_text="Investor password: watched, never closed")
    sync = serializers.SerializerMethodField()

    class Meta:
        model = TradingAccount
        fields = [
            "id", "broker", "broker_name", "server", "login", "is_primary", "read_only",
            "verified_at", "created_at", "currency", "leverage", "balance", "equity", "margin",
            "free_margin", "margin_level", "profit", "peak_equity", "drawdown_percent", "sync",
        ]
        read_only_fields = fields

    def get_sync(self, account: TradingAccount) -> dict[str, Any]:
        return SyncSerializer(account_sync_view(account)).data
