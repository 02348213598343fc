"""factory-boy factories for the models the tests build by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.crypto import credentials_encrypt
from accounts.models import TradingAccount, User
from positions.models import EquitySnapshot, Position


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-factory-1")


class TradingAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TradingAccount

    user = factory.SubFactory(UserFactory)
    broker = TradingAccount.Broker.MT5
    broker_name = "Sim"
    server = "SimBroker-Test"
    login = factory.Sequence(lambda n: str(3_000_000 + n))
    is_primary = True
    credentials_encrypted = factory.LazyFunction(lambda: credentials_encrypt(password="pw"))
    currency = "USD"
    leverage = 100
    balance = Decimal("10000.00")
    equity = Decimal("10000.00")
    margin = Decimal("0.00")
    free_margin = Decimal("10000.00")
    profit = Decimal("0.00")
    peak_equity = Decimal("10000.00")
    drawdown_percent = Decimal("0.00")
    sync_status = TradingAccount.SyncStatus.HEALTHY
    last_synced_at = factory.LazyFunction(timezone.now)
    next_sync_at = factory.LazyFunction(timezone.now)


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Position

    account = factory.SubFactory(TradingAccountFactory)
    ticket = factory.Sequence(lambda n: 5_000_000 + n)
    symbol = "EURUSD"
    side = Position.Side.BUY
    volume = Decimal("0.10")
    price_open = Decimal("1.07219")
    price_current = Decimal("1.07300")
    swap = Decimal("0.00")
    profit = Decimal("8.10")
    opened_at = datetime(2017, 4, 19, 9, tzinfo=UTC)
    last_synced_at = factory.LazyFunction(timezone.now)


class EquitySnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EquitySnapshot

    account = factory.SubFactory(TradingAccountFactory)
    taken_at = factory.LazyFunction(timezone.now)
    balance = Decimal("10000.00")
    equity = Decimal("10000.00")
    margin = Decimal("0.00")
    free_margin = Decimal("10000.00")
    profit = Decimal("0.00")
    peak_equity = Decimal("10000.00")
    drawdown_percent = Decimal("0.00")
    open_positions = 0
