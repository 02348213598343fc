"""The write side of sync without a network: constant queries per batch, high-water mark,
closing without a deal, and the lease that keeps a second writer out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import TradingAccount
from accounts.services import trading_account_create
from brokers.gateway import AccountState, BrokerPosition, Side
from positions.models import EquitySnapshot, Position, SyncLog
from positions.services import (
    AccountFetch,
    sync_lease_acquire,
    sync_results_apply,
)

pytestmark = pytest.mark.django_db

OPENED = datetime(2017, 4, 19, 9, tzinfo=UTC)


def state(login: int, equity: str, balance: str = "10000.00") -> AccountState:
    equity_d = Decimal(equity)
    return AccountState(
        login=login, server="S", currency="USD", leverage=100, balance=Decimal(balance),
        credit=Decimal(0), profit=equity_d - Decimal(balance), equity=equity_d,
        margin=Decimal("100.00"), free_margin=equity_d - 100, margin_level=Decimal("100.00"),
        margin_so_call=Decimal(100), margin_so_so=Decimal(50), trade_allowed=True,
    )


def position(ticket: int, price: str = "1.07300") -> BrokerPosition:
    return BrokerPosition(
        ticket=ticket, symbol="EURUSD", side=Side.BUY, volume=Decimal("0.10"),
        price_open=Decimal("1.07219"), price_current=Decimal(price), sl=None, tp=None,
        swap=Decimal(0), profit=Decimal("8.10"), magic=1, comment="", opened_at=OPENED,
    )


def accounts(user, n: int) -> list[TradingAccount]:
    return [trading_account_create(user=user, broker="mt5", broker_name="x", server="S",
                                   login=str(9000 + i), password="pw") for i in range(n)]


def fetch_for(account: TradingAccount, equity: str, tickets: list[int]) -> AccountFetch:
    return AccountFetch(
        account_id=account.pk, started_at=timezone.now(), duration_ms=1,
        state=state(int(account.login), equity),
        positions=tuple(position(t) for t in tickets),
    )


def apply(fetches: list[AccountFetch]):
    token, leased = sync_lease_acquire(account_ids=[f.account_id for f in fetches])
    assert len(leased) == len(fetches)
    return sync_results_apply(fetches=fetches, token=token)


@pytest.mark.postgres  # SQLite splits big INSERTs at its bound-parameter limit
def test_queries_do_not_grow_with_the_batch(member):
    every = accounts(member, 42)
    small, large = every[:2], every[2:]

    with CaptureQueriesContext(connection) as few:
        apply([fetch_for(a, "10000", [a.pk * 100 + i for i in range(5)]) for a in small])
    with CaptureQueriesContext(connection) as many:
        apply([fetch_for(a, "10000", [a.pk * 100 + i for i in range(5)]) for a in large])

    assert len(many) == len(few)
    assert Position.objects.count() == 5 * 42


def test_high_water_mark_and_drawdown_follow_equity(member):
    (account,) = accounts(member, 1)
    # peak 12000, then 9000: drawdown = (12000 − 9000) / 12000 × 100 = 25.00 %
    for equity in ("10000", "12000", "9000"):
        apply([fetch_for(account, equity, [])])
    account.refresh_from_db()
    assert account.peak_equity == Decimal("12000.00")
    assert account.drawdown_percent == Decimal("25.00")
    drawdowns = list(EquitySnapshot.objects.filter(account=account)
                     .order_by("id").values_list("drawdown_percent", flat=True))
    assert drawdowns == [Decimal("0.00"), Decimal("0.00"), Decimal("25.00")]


def test_vanished_position_without_a_deal_is_closed_as_unknown(member):
    (account,) = accounts(member, 1)
    apply([fetch_for(account, "10000", [1, 2])])
    apply([fetch_for(account, "10000", [1])])  # ticket 2 gone, no deal in this reply

    gone = Position.objects.get(account=account, ticket=2)
    assert gone.status == Position.Status.CLOSED
    assert gone.close_reason == Position.CloseReason.UNKNOWN
    assert gone.realized_pnl is None
    assert SyncLog.objects.latest("id").positions_closed == 1


def test_failed_fetch_keeps_positions_and_figures(member):
    (account,) = accounts(member, 1)
    apply([fetch_for(account, "10500", [1, 2])])
    failed = AccountFetch(account_id=account.pk, started_at=timezone.now(), duration_ms=5,
                          error_code="broker_timeout", error_message="timed out")
    apply([failed])

    account.refresh_from_db()
    assert account.equity == Decimal("10500.00")
    assert account.sync_status == TradingAccount.SyncStatus.STALE
    assert Position.objects.filter(account=account, status="open").count() == 2
    # one failure backs off one cadence; the lease is released
    assert account.next_sync_at >= timezone.now() + timedelta(seconds=9)
    assert account.sync_lease_token is None


def test_a_writer_without_the_lease_writes_nothing(member):
    (account,) = accounts(member, 1)
    token, _ = sync_lease_acquire(account_ids=[account.pk])
    outcome = sync_results_apply(fetches=[fetch_for(account, "10000", [1])],
                                 token=uuid.uuid4())
    assert outcome.skipped == [account.pk]
    assert not Position.objects.exists()
    # and the lease holder can still write
    outcome = sync_results_apply(fetches=[fetch_for(account, "10000", [1])], token=token)
    assert outcome.synced == [account.pk]


def test_a_second_lease_on_a_leased_account_is_refused(member):
    (account,) = accounts(member, 1)
    _, first = sync_lease_acquire(account_ids=[account.pk])
    _, second = sync_lease_acquire(account_ids=[account.pk])
    assert (first, second) == ([account.pk], [])


def test_an_expired_lease_can_be_taken_over(member):
    (account,) = accounts(member, 1)
    sync_lease_acquire(account_ids=[account.pk])
    TradingAccount.objects.filter(pk=account.pk).update(
        sync_lease_until=timezone.now() - timedelta(seconds=1))
    _, taken = sync_lease_acquire(account_ids=[account.pk])
    assert taken == [account.pk]
