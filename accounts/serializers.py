"""Input and output shapes of the accounts API. Credentials go in, never out."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import TradingAccount
from accounts.selectors import account_sync_view

MAX_LOGIN = 2**63 - 1


class AccountLinkInput(serializers.Serializer):
    """Link a MetaTrader 5 account (``broker`` "mt5" or absent): verified by logging in."""

    broker = serializers.ChoiceField(choices=[("mt5", "MetaTrader 5")], default="mt5",
                                     help_text="mt5 (the default)")
    login = serializers.IntegerField(min_value=1, max_value=MAX_LOGIN,
                                     help_text="MT5 account number")
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True,
                                     help_text="Investor (read-only) or master password")
    server = serializers.CharField(max_length=100, help_text="Broker server, e.g. ICMarkets-Demo")
    broker_name = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                        default="")


class IbkrAccountLinkInput(serializers.Serializer):
    """Link an Interactive Brokers account (``broker`` "ibkr"): its id and the IB Gateway
    serving it, verified against the gateway's managed accounts. No password: IB Gateway
    holds the login."""

    broker = serializers.ChoiceField(choices=[("ibkr", "Interactive Brokers")])
    account_id = serializers.RegexField(
        r"^D?U\d{4,12}$", max_length=16,
        error_messages={"invalid": "An IB account id looks like U1234567 or DU1234567."},
        help_text="IB account id, e.g. U1234567, or DU1234567 for a paper account")
    gateway = serializers.CharField(
        max_length=64, required=False, default="", allow_blank=True,
        help_text="Name of the IB Gateway serving the account; empty: the one registered "
                  "for it")
    read_only = serializers.BooleanField(
        required=False, default=False, help_text="Watched, never closed by the guards")
    broker_name = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                        default="")


def account_link_input(data: Any) -> serializers.Serializer:
    """The link input serializer for ``data``'s broker ("ibkr": IbkrAccountLinkInput;
    anything else, or none: AccountLinkInput, which names a bad ``broker``)."""
    if isinstance(data, dict) and data.get("broker") == "ibkr":
        return IbkrAccountLinkInput(data=data)
    return AccountLinkInput(data=data)


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
