"""A batch costs the same number of statements at 10 accounts as at 100 (issue 14).

Both batches are in a steady state that still writes per account: the guard brings every
account's next read forward (each is in its warning band with a read planned an hour out),
and reconciliation matches every account's expected trade for the first time (each trade
moves from pending to open). Neither raises an alert, whose outbox write is per member.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import TradingAccount
from guards.models import AccountGuardState
from guards.services import accounts_guard, guard_settings_get
from reconciliation.models import ExpectedTrade
from reconciliation.services import accounts_reconcile
from tests.factories import PositionFactory, TradingAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

SIZES = [10, 100]


def _accounts(n: int) -> list[int]:
    user = UserFactory()
    return [TradingAccountFactory(user=user, is_primary=i == 0).pk for i in range(n)]


def _in_warning_band(ids: list[int]) -> None:
    # 16 % below the peak: warning (15 %) and not critical (20 %), so the guard wants the
    # next read within 5 s; the stored plan is an hour out.
    later = timezone.now() + timedelta(hours=1)
    TradingAccount.objects.filter(pk__in=ids).update(
        equity=Decimal("8400.00"), peak_equity=Decimal("10000.00"),
        drawdown_percent=Decimal("16.00"), next_sync_at=later)
    AccountGuardState.objects.bulk_create(
        [AccountGuardState(account_id=i, level="warning", initial_balance=Decimal("10000.00"))
         for i in ids])
    guard_settings_get()  # the settings row exists, as it does after the first batch


def _guard_statements(n: int) -> tuple[int, list[int]]:
    ids = _accounts(n)
    _in_warning_band(ids)
    with CaptureQueriesContext(connection) as captured:
        outcome = accounts_guard(account_ids=ids)
    assert outcome.transitions == 0 and outcome.episodes == []
    return len(captured), ids


@pytest.mark.parametrize("n", SIZES)
def test_the_guard_batch_is_a_constant_number_of_statements(n, django_assert_num_queries):
    ids = _accounts(n)
    _in_warning_band(ids)
    # accounts; states insert (ignore conflicts) and read; busy episodes; holdings;
    # settings row; overrides; servers; their zones; one UPDATE bringing the next reads
    # forward; then the savepoint, the state upsert and the release (no drawdown alert)
    with django_assert_num_queries(13):
        accounts_guard(account_ids=ids)
    soon = timezone.now() + timedelta(seconds=6)
    assert TradingAccount.objects.filter(pk__in=ids, next_sync_at__lte=soon).count() == n


def test_the_guard_batch_costs_the_same_at_10_and_100():
    small, _ = _guard_statements(10)
    large, _ = _guard_statements(100)
    assert small == large


def _matched_for_the_first_time(n: int) -> list[int]:
    ids = _accounts(n)
    for i, account_id in enumerate(ids):
        tag = f"bo-{i:010d}"
        ExpectedTrade.objects.create(account_id=account_id, symbol="EURUSD", side="buy",
                                     volume=Decimal("0.10"), magic=settings.BOT_MAGIC,
                                     tag=tag, requested_price=Decimal("1.07219"))
        PositionFactory(account_id=account_id, ticket=9_000_000 + i, magic=settings.BOT_MAGIC,
                        comment=tag)
    return ids


@pytest.mark.parametrize("n", SIZES)
def test_the_reconcile_batch_is_a_constant_number_of_statements(n, django_assert_num_queries):
    ids = _matched_for_the_first_time(n)
    # savepoint; live trades (locked); open positions; open divergences; servers;
    # instruments; one bulk UPDATE of the matched trades; release (no ticket is known
    # yet, so the closed-positions query is skipped)
    with django_assert_num_queries(8):
        outcome = accounts_reconcile(account_ids=ids)
    assert outcome.opened == 0
    assert ExpectedTrade.objects.filter(account_id__in=ids,
                                        status=ExpectedTrade.Status.OPEN).count() == n
