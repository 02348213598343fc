"""Events put alerts in the member's outbox in their own transaction: an account going
stale and recovering, a divergence, a liquidation countdown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from guards import services as guards
from notifications.models import Alert
from pipeline.services import accounts_sync
from tests.factories import PositionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db


def kinds(user) -> list[str]:
    return list(Alert.objects.filter(user=user).order_by("id").values_list("kind", flat=True))


def test_stale_and_recovered_are_alerted_once_each(sim_bridge, linked_account, member):
    account = linked_account(9701)
    accounts_sync(account_ids=[account.pk])
    sim_bridge.sim("sim_inject_fault", "none", method="account_info", count=2)
    accounts_sync(account_ids=[account.pk])
    accounts_sync(account_ids=[account.pk])  # still failing: no second alert
    accounts_sync(account_ids=[account.pk])  # readable again
    assert kinds(member) == ["account_stale", "account_recovered"]


def test_a_divergence_is_alerted(sim_bridge, linked_account, member):
    account = linked_account(9702)
    sim_bridge.sim("sim_open", 9702, "EURUSD", "buy", "0.10", magic=0)  # a manual position
    accounts_sync(account_ids=[account.pk])
    accounts_sync(account_ids=[account.pk])
    assert kinds(member) == ["divergence_opened"]
    assert "manual" in Alert.objects.get(user=member).text


def test_the_liquidation_countdown_is_alerted_with_the_guard_row(member):
    account = TradingAccountFactory(user=member, peak_equity=Decimal("10000.00"),
                                    equity=Decimal("7000.00"))
    PositionFactory(account=account)
    guards.accounts_guard(account_ids=[account.pk])
    alert = Alert.objects.get(user=member, kind="liquidation_countdown")
    assert alert.account_id == account.pk and "closed in 10 s" in alert.text
    assert alert.payload["positions"][0]["volume"] == "0.1000"


def test_turned_off_kinds_are_not_written(member):
    from notifications.models import AlertPreference

    AlertPreference.objects.create(user=member, kind="drawdown_warning", mode="off")
    account = TradingAccountFactory(user=member, peak_equity=Decimal("10000.00"),
                                    equity=Decimal("8400.00"))  # 16 %: warning
    guards.accounts_guard(account_ids=[account.pk])
    assert kinds(member) == []
