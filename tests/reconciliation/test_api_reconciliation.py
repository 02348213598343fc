"""POST /api/v1/trades and GET /api/v1/reconciliation/{user_id}."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reconciliation.models import ExpectedTrade, OpenDivergence, ReconciliationLog
from tests.factories import TradingAccountFactory

pytestmark = pytest.mark.django_db

TRADE = {"symbol": "EURUSD", "side": "buy", "volume": "0.50", "requested_price": "1.07219",
         "sl": "1.07000", "tp": "1.08000", "signal_ref": "S-1", "approval_ref": "A-1",
         "entry_number": 1}


def test_owner_registers_a_trade(owner_api, member):
    account = TradingAccountFactory(user=member)
    response = owner_api.post("/api/v1/trades", {**TRADE, "account_id": account.pk},
                              format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["tag"].startswith("bo-")
    assert body["magic"] == 20240101
    again = owner_api.post("/api/v1/trades", {**TRADE, "account_id": account.pk},
                           format="json")
    assert again.json()["id"] == body["id"]  # same approved entry: same trade


def test_service_token_registers_and_a_bad_one_is_401(anon_api, member, settings):
    settings.EXECUTION_SERVICE_TOKEN = "svc-token-0123456789abcdef"
    account = TradingAccountFactory(user=member)
    payload = {**TRADE, "account_id": account.pk}
    ok = anon_api.post("/api/v1/trades", payload, format="json",
                       HTTP_AUTHORIZATION="Service svc-token-0123456789abcdef")
    assert ok.status_code == 201
    bad = anon_api.post("/api/v1/trades", payload, format="json",
                        HTTP_AUTHORIZATION="Service wrong-token")
    assert bad.status_code == 401
    assert anon_api.post("/api/v1/trades", payload, format="json").status_code == 401
    assert ExpectedTrade.objects.count() == 1


def test_a_member_cannot_register_trades(api, member):
    account = TradingAccountFactory(user=member)
    response = api.post("/api/v1/trades", {**TRADE, "account_id": account.pk}, format="json")
    assert response.status_code == 403
    assert not ExpectedTrade.objects.exists()


@pytest.mark.parametrize("change", [
    {"volume": "0"}, {"volume": "-1"}, {"side": "long"}, {"entry_number": 4},
    {"symbol": "EUR USD; DROP"}, {"sl": "NaN"}, {"requested_price": "Infinity"},
    {"account_id": "x"}, {"signal_ref": "s" * 65},
])
def test_bad_trades_are_400_and_store_nothing(owner_api, member, change):
    account = TradingAccountFactory(user=member)
    response = owner_api.post("/api/v1/trades", {**TRADE, "account_id": account.pk, **change},
                              format="json")
    assert response.status_code == 400
    assert not ExpectedTrade.objects.exists()


def test_a_trade_for_an_unknown_account_is_404(owner_api):
    response = owner_api.post("/api/v1/trades", {**TRADE, "account_id": 999999},
                              format="json")
    assert response.status_code == 404


def divergences(account):
    now = timezone.now()
    OpenDivergence.objects.create(account=account, key="manual:t7", kind="manual", ticket=7,
                                  figures={"volume": "0.1"}, opened_at=now)
    ReconciliationLog.objects.create(account=account, key="manual:t7", kind="manual",
                                     event="opened", ticket=7, created_at=now)
    ReconciliationLog.objects.create(account=account, key="slippage:e1", kind="slippage",
                                     event="opened", created_at=now)
    ReconciliationLog.objects.create(account=account, key="slippage:e1", kind="slippage",
                                     event="resolved", created_at=now)


def test_member_reads_their_own_reconciliation(api, member):
    account = TradingAccountFactory(user=member)
    divergences(account)
    body = api.get(f"/api/v1/reconciliation/{member.pk}").json()
    (row,) = body["accounts"]
    assert row["account_id"] == account.pk
    assert [d["kind"] for d in row["open_divergences"]] == ["manual"]
    assert [d["kind"] for d in row["recent_resolved"]] == ["slippage"]
    assert row["counts_by_kind"] == {"manual": 1, "slippage": 1}
    assert row["sync"]["status"] == "healthy"


def test_reconciliation_ownership(api, stranger_api, owner_api, anon_api, member, stranger):
    TradingAccountFactory(user=member)
    url = f"/api/v1/reconciliation/{member.pk}"
    assert stranger_api.get(url).status_code == 404
    assert owner_api.get(url).status_code == 200
    assert anon_api.get(url).status_code == 401
    assert api.get(f"/api/v1/reconciliation/{stranger.pk}").status_code == 404
    assert owner_api.get("/api/v1/reconciliation/999999").status_code == 404
    assert api.get("/api/v1/reconciliation/me").status_code == 400
