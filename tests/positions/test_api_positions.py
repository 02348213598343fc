"""/api/v1/positions, /accounts/{id}/positions, /summary and /equity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import TradingAccount
from positions.models import SyncLog
from tests.factories import EquitySnapshotFactory, PositionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db

SEED_FIELDS = {
    "account_id", "balance", "equity", "free_margin", "margin_level", "drawdown_percent",
    "open_positions_count", "total_pnl", "total_pnl_percent", "currency", "positions",
    "last_updated", "sync",
}
POSITION_FIELDS = {
    "id", "ticket", "instrument", "side", "volume", "entry_price", "current_price",
    "stop_loss", "take_profit", "swap", "pnl", "pnl_percent", "opened_at",
}


def test_primary_positions_have_the_seeds_shape_and_figures(api, member):
    account = TradingAccountFactory(user=member, balance=Decimal("10000.00"),
                                    equity=Decimal("10121.60"), margin_level=Decimal("943.93"),
                                    drawdown_percent=Decimal("1.20"))
    # buy 1.00 EURUSD 1.07219 → 1.07300: 81.00 USD (MT5 forex profit, broker's figure)
    PositionFactory(account=account, side="buy", volume=Decimal("1.00"),
                    price_open=Decimal("1.07219"), price_current=Decimal("1.07300"),
                    profit=Decimal("81.00"), sl=Decimal("1.07000"))
    # sell 0.50 EURUSD 1.08930 → 1.08500: 215.00 USD, less 1.40 swap
    PositionFactory(account=account, side="sell", volume=Decimal("0.50"),
                    price_open=Decimal("1.08930"), price_current=Decimal("1.08500"),
                    profit=Decimal("215.00"), swap=Decimal("-1.40"))
    PositionFactory(account=account, status="closed", profit=Decimal("999"))

    body = api.get("/api/v1/positions").json()

    assert SEED_FIELDS <= set(body)
    assert body["account_id"] == account.pk and body["currency"] == "USD"
    assert body["open_positions_count"] == 2
    # total = 81.00 + 215.00 − 1.40 = 294.60 USD; of the 10,000.00 balance = 2.95 %
    assert body["total_pnl"] == "294.60"
    assert body["total_pnl_percent"] == "2.95"
    assert body["margin_level"] == "943.93" and body["drawdown_percent"] == "1.20"
    assert body["percent_bases"]["drawdown_percent"].startswith("peak equity")
    by_side = {p["side"]: p for p in body["positions"]}
    assert POSITION_FIELDS <= set(by_side["buy"])
    assert by_side["buy"]["pnl"] == "81.00" and by_side["buy"]["stop_loss"] == "1.07000000"
    # % of entry notional: (1.07300 − 1.07219) / 1.07219 × 100 = 0.0755… → 0.08
    assert by_side["buy"]["pnl_percent"] == "0.08"
    # sell: (1.08930 − 1.08500) / 1.08930 × 100 = 0.3947… → 0.39
    assert by_side["sell"]["pnl_percent"] == "0.39"
    assert body["sync"]["status"] == "healthy"


def test_an_old_answer_says_stale(api, member, settings):
    settings.ACCOUNT_CACHE_TTL_SECONDS = 30
    TradingAccountFactory(user=member, last_synced_at=timezone.now() - timedelta(seconds=45))
    sync = api.get("/api/v1/positions").json()["sync"]
    assert sync["status"] == "stale" and sync["age_seconds"] >= 45


def test_error_status_and_its_reason_are_shown(api, member):
    TradingAccountFactory(user=member, sync_status="error",
                          sync_error_code="broker_auth_failed",
                          sync_error_message="login refused")
    sync = api.get("/api/v1/positions").json()["sync"]
    assert (sync["status"], sync["error_code"]) == ("error", "broker_auth_failed")


def test_no_primary_account_is_404(api):
    assert api.get("/api/v1/positions").status_code == 404


def test_queries_do_not_grow_with_positions(api, member, django_assert_num_queries):
    account = TradingAccountFactory(user=member)
    PositionFactory(account=account)
    # the JWT's user, the account (with its user joined), its open positions
    with django_assert_num_queries(3):
        assert api.get(f"/api/v1/accounts/{account.pk}/positions").status_code == 200
    PositionFactory.create_batch(30, account=account)
    with django_assert_num_queries(3):
        body = api.get(f"/api/v1/accounts/{account.pk}/positions").json()
    assert body["open_positions_count"] == 31


def test_account_positions_ownership(api, stranger_api, owner_api, member):
    account = TradingAccountFactory(user=member)
    url = f"/api/v1/accounts/{account.pk}/positions"
    assert api.get(url).status_code == 200
    assert stranger_api.get(url).status_code == 404
    assert owner_api.get(url).status_code == 200
    assert api.get("/api/v1/accounts/x1/positions").status_code == 400
    assert api.get(f"{url}?force_refresh=perhaps").status_code == 400


def test_force_refresh_syncs_now_and_then_429(api, member, sim_bridge, linked_account, cache):
    account = linked_account(8201)
    sim_bridge.sim("sim_open", 8201, "EURUSD", "buy", "0.10", magic=1)
    url = f"/api/v1/accounts/{account.pk}/positions?force_refresh=true"

    first = api.get(url)
    assert first.status_code == 200
    assert first.json()["open_positions_count"] == 1
    assert SyncLog.objects.filter(account=account, result="ok").count() == 1

    second = api.get(url)
    assert second.status_code == 429
    assert second.json()["code"] == "rate_limited"
    assert 1 <= int(second["Retry-After"]) <= 10
    assert SyncLog.objects.filter(account=account).count() == 1
    # a plain read is still served from the last sync
    assert api.get(f"/api/v1/accounts/{account.pk}/positions").status_code == 200


@pytest.fixture
def cache():
    from django.core.cache import cache

    cache.clear()
    yield cache
    cache.clear()


# --- summary ---
def closed(account, pnl: str, day: int):
    return PositionFactory(account=account, status="closed", realized_pnl=Decimal(pnl),
                           close_reason="tp", closed_at=datetime(2017, 5, day, tzinfo=UTC))


def test_summary_over_closed_positions(api, stranger_api, owner_api, member):
    account = TradingAccountFactory(user=member)
    best = closed(account, "100.00", 1)
    worst = closed(account, "-50.00", 2)
    closed(account, "25.00", 3)
    closed(account, "-10.00", 20)  # outside the period asked below
    PositionFactory(account=account, profit=Decimal("7.50"), swap=Decimal("-0.50"))
    url = f"/api/v1/accounts/{account.pk}/summary"

    body = api.get(url, {"since": "2017-05-01T00:00:00Z", "until": "2017-05-10T00:00:00Z"}).json()

    # 100 − 50 + 25 = 75.00 realized; 2 wins of 3 = 66.67 %; open 7.50 − 0.50 = 7.00
    assert body["realized_pnl"] == "75.00"
    assert (body["closed_trades"], body["wins"], body["losses"]) == (3, 2, 1)
    assert body["win_rate_percent"] == "66.67"
    assert body["best_trade"]["ticket"] == best.ticket
    assert body["worst_trade"]["ticket"] == worst.ticket
    assert body["open_pnl"] == "7.00" and body["open_positions"] == 1
    assert api.get(url).json()["closed_trades"] == 4  # no period: everything
    assert stranger_api.get(url).status_code == 404
    assert owner_api.get(url).status_code == 200
    assert api.get(url, {"since": "yesterday"}).status_code == 400
    assert api.get(url, {"since": "2017-05-02T00:00:00Z",
                         "until": "2017-05-01T00:00:00Z"}).status_code == 400


def test_summary_without_trades(api, member):
    account = TradingAccountFactory(user=member)
    body = api.get(f"/api/v1/accounts/{account.pk}/summary").json()
    assert (body["closed_trades"], body["win_rate_percent"], body["best_trade"]) == (0, None,
                                                                                     None)


# --- equity ---
def test_equity_series_is_downsampled_in_order(api, stranger_api, member):
    account = TradingAccountFactory(user=member)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1000):
        EquitySnapshotFactory(account=account, taken_at=start + timedelta(seconds=10 * i),
                              equity=Decimal(10000 + i))
    url = f"/api/v1/accounts/{account.pk}/equity"

    body = api.get(url, {"points": 100}).json()

    points = body["points"]
    assert len(points) == 100  # every 10th of 1000
    assert points[0]["equity"] == "10000.00" and points[1]["equity"] == "10010.00"
    assert [p["taken_at"] for p in points] == sorted(p["taken_at"] for p in points)
    assert len(api.get(url).json()["points"]) == 500  # default points: every 2nd
    since = api.get(url, {"since": (start + timedelta(seconds=9990)).isoformat()}).json()
    assert [p["equity"] for p in since["points"]] == ["10999.00"]
    assert stranger_api.get(url).status_code == 404
    for bad in ({"points": 1}, {"points": 10**6}, {"points": "many"}):
        assert api.get(url, bad).status_code == 400


def test_account_sync_status_on_the_accounts_list(api, member):
    TradingAccountFactory(user=member, sync_status=TradingAccount.SyncStatus.PENDING,
                          last_synced_at=None)
    (account,) = api.get("/api/v1/accounts").json()
    assert account["sync"]["status"] == "pending" and account["sync"]["age_seconds"] is None


def test_openapi_schema_and_docs_need_no_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/accounts/{account_id}/positions" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn.jsdelivr" not in docs.content and b"unpkg" not in docs.content
