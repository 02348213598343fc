"""The owner's risk dashboard on the admin index: its figures, its links, who sees it, and
a query count that does not grow with the number of accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import TradingAccount
from dashboard.equity import bucket_width, equity_buckets, sparklines, sparklines_warm
from dashboard.selectors import risk_dashboard
from guards.models import AccountGuardState, CloseRequest, LiquidationEpisode, PlatformState
from positions.models import Position
from reconciliation.models import OpenDivergence
from tests.factories import (
    EquitySnapshotFactory,
    PositionFactory,
    TradingAccountFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_cache(settings):
    """A cache of this test's own: the sparklines are cached, and a shared cache could hold
    another run's."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "dashboard-tests"}}
    from django.core.cache import cache

    cache.clear()
D = Decimal
SELECTOR_QUERIES = 10


def _roster(n: int, *, start: int = 0, now: datetime | None = None) -> list[TradingAccount]:
    """``n`` accounts, a third of each currency, with snapshots, guard states, episodes,
    close requests, divergences and closed positions: every list the dashboard reads."""
    now = now or timezone.now()
    accounts = []
    for i in range(start, start + n):
        currency = ("USD", "EUR", "GBP")[i % 3]
        account = TradingAccountFactory(
            currency=currency, equity=D(1000 + i), profit=D(i % 7) - 3, peak_equity=D(1200),
            drawdown_percent=D(i % 25), sync_status=("healthy", "stale")[i % 2])
        accounts.append(account)
        AccountGuardState.objects.create(account=account,
                                         level=("ok", "warning", "critical")[i % 3])
        # 10-minute buckets (15 h of history); the first bucket is left out: 3 points
        for minutes in (30, 65, 600, 900):
            EquitySnapshotFactory(account=account, taken_at=now - timedelta(minutes=minutes),
                                  equity=D(1000 + i))
        PositionFactory(account=account, status=Position.Status.CLOSED, closed_at=now,
                        realized_pnl=D("1.50"))
        OpenDivergence.objects.create(account=account, key=f"k{i}", kind="manual",
                                      opened_at=now)
        if i % 3 == 2:
            episode = LiquidationEpisode.objects.create(
                account=account, reason="drawdown", started_at=now - timedelta(seconds=30),
                recheck_at=now + timedelta(seconds=8),
                status=("warning", "liquidating")[i % 2])
            CloseRequest.objects.create(account=account, ticket=i, key=f"episode:{episode.pk}",
                                        episode=episode, reason="drawdown")
    return accounts


def _admin_index(client, user, *, cold: bool = True) -> tuple[str, int]:
    if cold:
        cache.clear()  # the sparklines' cache: count the cold render's queries
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def test_the_owner_sees_the_figures_with_links_into_the_filtered_lists(client, owner):
    now = timezone.now()
    usd = TradingAccountFactory(currency="USD", equity=D("10250.50"), profit=D("-120.25"),
                                peak_equity=D("12000"), drawdown_percent=D("14.58"))
    TradingAccountFactory(currency="USD", equity=D("5000.00"), profit=D("30.00"))
    eur = TradingAccountFactory(currency="EUR", equity=D("7000.00"), profit=D("0"),
                                sync_status="stale", last_synced_at=now - timedelta(minutes=3))
    AccountGuardState.objects.create(account=usd, level="warning")
    AccountGuardState.objects.create(account=eur, level="critical")
    LiquidationEpisode.objects.create(account=eur, reason="drawdown", started_at=now,
                                      recheck_at=now + timedelta(seconds=9))
    CloseRequest.objects.create(account=usd, ticket=1, key="manual:1", reason="manual",
                                status="failed")
    OpenDivergence.objects.create(account=usd, key="a", kind="sl_tp_mismatch", opened_at=now)
    PositionFactory(account=usd, status=Position.Status.CLOSED, closed_at=now,
                    realized_pnl=D("42.10"))
    PositionFactory(account=usd, status=Position.Status.CLOSED,
                    closed_at=now - timedelta(days=2), realized_pnl=D("999"))  # not today
    for minutes, equity in ((120, "10000"), (60, "10100"), (30, "10250.50")):
        EquitySnapshotFactory(account=usd, taken_at=now - timedelta(minutes=minutes),
                              equity=D(equity))
    PlatformState.objects.create(pk=1, state="reducing", reason="news at 14:30",
                                 changed_by=owner)

    while sparklines_warm():  # what the beat task does: every finished bucket cached
        pass
    html, _ = _admin_index(client, owner, cold=False)

    assert 'id="risk-dashboard"' in html
    assert "REDUCING" in html and "news at 14:30" in html and "changed by <b>owner</b>" in html
    # 15,250.50 = 10,250.50 + 5,000.00; open P&L −90.25 = −120.25 + 30.00 (USD, hand-added)
    assert "15,250.50 USD" in html and "−90.25 USD" in html and "+42.10 USD" in html
    assert "7,000.00 EUR" in html
    assert "/admin/guards/accountguardstate/?level__exact=warning" in html
    assert "/admin/accounts/tradingaccount/?sync_status__exact=stale" in html
    assert "/admin/guards/closerequest/?status__exact=failed" in html
    assert "/admin/reconciliation/opendivergence/?kind__exact=sl_tp_mismatch" in html
    assert "re-check in" in html  # the episode's countdown
    assert "14.58 %" in html  # the deepest drawdown
    assert "<polyline" in html  # the USD sparkline


def test_a_member_never_sees_it(client, django_user_model):
    staff_member = django_user_model.objects.create_user(username="support", password="pw-1",
                                                         is_staff=True)
    TradingAccountFactory()
    html, _ = _admin_index(client, staff_member)
    assert "risk-dashboard" not in html and "Equity per currency" not in html

    member = UserFactory()
    client.force_login(member)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_query_count_does_not_grow_with_the_accounts(client, owner,
                                                         django_assert_num_queries):
    now = timezone.now()
    _roster(3, now=now)
    _, small = _admin_index(client, owner)
    _roster(60, start=3, now=now)
    _, large = _admin_index(client, owner)
    assert small == large
    cache.clear()
    with django_assert_num_queries(SELECTOR_QUERIES):
        risk_dashboard()
    while sparklines_warm():  # the beat task: the buckets the cold render left
        pass
    with django_assert_num_queries(SELECTOR_QUERIES - 1):  # finished buckets are cached
        dash = risk_dashboard()
    assert dash.accounts_total == 63
    # 21 accounts at each of ok / warning / critical; the 21 critical ones with i % 3 == 2
    # have an episode, 10 of them (i odd) liquidating: counted there, not under critical
    assert [(t.label, t.count) for t in dash.guard_levels] == [
        ("ok", 21), ("warning", 21), ("critical", 11), ("liquidating", 10)]
    assert dash.episodes_total == 21 and len(dash.episodes) == 20
    assert [len(c.sparkline.points.split()) for c in dash.currencies] == [3, 3, 3]


def test_equity_is_downsampled_per_currency_and_bucket_in_sql():
    base = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a whole minute: bucket k0 starts here
    k0 = int(base.timestamp()) // 60
    a = TradingAccountFactory(currency="USD")
    b = TradingAccountFactory(currency="USD")
    c = TradingAccountFactory(currency="EUR")
    for account, seconds, equity in [
        (a, 5, "100"), (a, 55, "110"),  # bucket k0 (60 s wide): a averages 105
        (b, 30, "50"),                  # bucket k0: b 50 → USD 155 from 2 accounts
        (a, 130, "90"),                 # bucket k0 + 2: USD 90 from a alone
        (c, 61, "10.01"), (c, 119, "10.02"),  # k0 + 1: c averages 10.015 → 10.02 (cents)
        (a, 180, "1"),                  # k0 + 3: outside [k0, k0 + 3)
    ]:
        EquitySnapshotFactory(account=account, taken_at=base + timedelta(seconds=seconds),
                              equity=D(equity))
    EquitySnapshotFactory(account=a, taken_at=base - timedelta(seconds=1), equity=D(1))
    rows = equity_buckets(start=k0, stop=k0 + 3, bucket_seconds=60)
    assert rows == [("EUR", k0 + 1, D("10.02"), 1), ("USD", k0, D("155.00"), 2),
                    ("USD", k0 + 2, D("90.00"), 1)]


@pytest.mark.parametrize(("hours", "width"), [(0.5, 60), (1.6, 60), (1.7, 120), (8, 300),
                                              (16, 600), (24, 900), (72, 900)])
def test_the_bucket_width_fits_the_history_into_96_points(hours, width):
    # 96 buckets of 60 s cover 1.6 h, of 120 s 3.2 h, of 300 s 8 h, of 600 s 16 h
    assert bucket_width(timedelta(hours=hours)) == width


def test_the_line_ends_at_the_last_finished_bucket_and_finished_ones_are_cached(
        django_assert_num_queries):
    now = datetime.fromtimestamp((int(timezone.now().timestamp()) // 60) * 60 + 30, tz=UTC)
    account = TradingAccountFactory(currency="USD")
    for minutes_ago, equity in ((30, "1"), (20, "2"), (10, "3"), (0, "4")):
        EquitySnapshotFactory(account=account, equity=D(equity),
                              taken_at=now - timedelta(minutes=minutes_ago))
    # 30 min of history: 60 s buckets; the first (30 min ago) and the running one are out
    assert sparklines_warm(now=now) == 24  # the newest 24 of 29 finished buckets
    lines, since, width = sparklines(now=now)  # the newest are cached: it computes none
    assert width == 60 and since == now - timedelta(minutes=29, seconds=30)
    assert (lines["USD"].first, lines["USD"].last, lines["USD"].samples) == (D(2), D(3), 2)
    assert sparklines_warm(now=now) == 5
    with django_assert_num_queries(1):  # only the window: every finished bucket is cached
        assert sparklines(now=now)[0] == lines


def test_a_cold_cache_costs_a_render_one_bucket_and_the_beat_task_the_rest():
    now = datetime.fromtimestamp((int(timezone.now().timestamp()) // 60) * 60 + 30, tz=UTC)
    account = TradingAccountFactory(currency="EUR")
    for minutes_ago in range(12, -1, -1):  # one snapshot a minute: 12 finished buckets
        EquitySnapshotFactory(account=account, equity=D(1000 - minutes_ago),
                              taken_at=now - timedelta(minutes=minutes_ago))
    lines, _, _ = sparklines(now=now)
    assert (lines["EUR"].samples, lines["EUR"].last) == (1, D(999))  # the newest only
    assert sparklines_warm(now=now) == 10  # 12 buckets, the first left out, 1 cached
    lines, _, _ = sparklines(now=now)
    # the first bucket (12 min ago, 988) is left out: the line runs from 989 to 999
    assert (lines["EUR"].samples, lines["EUR"].first) == (11, D(989))
    assert sparklines_warm(now=now) == 0


def test_the_beat_task_warms_the_cache_and_is_scheduled(settings):
    from dashboard.tasks import equity_sparklines_warm

    now = timezone.now()
    account = TradingAccountFactory(currency="USD")
    for minutes_ago in (20, 15, 10):  # 20 min of history: about 19 one-minute buckets
        EquitySnapshotFactory(account=account, taken_at=now - timedelta(minutes=minutes_ago))
    assert 0 < equity_sparklines_warm.apply().get() <= 20
    assert equity_sparklines_warm.apply().get() == 0  # safe to run twice: nothing left
    entry = settings.CELERY_BEAT_SCHEDULE["dashboard-sparklines-warm"]
    assert entry["task"] == "dashboard.tasks.equity_sparklines_warm"
