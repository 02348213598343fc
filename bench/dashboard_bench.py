"""Benchmark the owner's risk dashboard (the admin index) at 2,000 accounts.

    .venv/bin/python bench/dashboard_bench.py [--accounts 2000] [--cadence 10] [--runs 20]

The question (issue 15): does the admin index render in under 200 ms with 2,000 accounts,
and does its query count stay constant? What it does:

1. a scratch PostgreSQL database (``bench_dashboard``), the project's tables emptied;
2. ``--accounts`` linked accounts (USD / EUR / GBP, ten per member), each with a guard
   state (a tenth warning, a fiftieth critical), 5 open and 5 closed-today positions;
   20 running liquidation episodes with a close request each, 300 open divergences; and
   24 hours of equity snapshots at one per ``--cadence`` seconds per account (10 s, the
   default sync cadence: 17.3 million rows at 2,000 accounts), written by
   ``generate_series`` in the database, then ANALYZE;
3. times ``GET /admin/`` as the owner through Django's test client (the whole request:
   session, the admin's app list, the selector, the template): ``--runs`` times with every
   finished sparkline bucket cached (every render while beat runs), ``--runs`` times with
   the two newest forgotten (the render computes one 15-minute bucket itself, as it would
   with beat down), and ``--cold-runs`` times with the cache emptied (the render computes the
   newest bucket); prints the query counts, p50 and max; then times the beat task
   filling an emptied cache (96 buckets, 24 a run). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402
    bench_environment,
    database_ensure,
    tables_empty,
)

BENCH_DB = "bench_dashboard"
bench_environment(BENCH_DB, redis_url="redis://127.0.0.1:6379/12")

PROJECT_APPS = ("accounts", "positions", "reconciliation", "risk", "guards", "notifications")


def seed(accounts: int, cadence: int) -> None:
    from datetime import timedelta
    from decimal import Decimal

    from django.db import connection
    from django.utils import timezone

    from accounts.crypto import credentials_encrypt
    from accounts.models import TradingAccount, User
    from guards.models import AccountGuardState, CloseRequest, LiquidationEpisode
    from positions.models import Position
    from reconciliation.models import OpenDivergence

    now = timezone.now()
    User.objects.create_user(username="owner", password="bench-owner-pw", role="owner",
                             is_staff=True, is_superuser=True)
    members = User.objects.bulk_create([User(username=f"m{i:04d}")
                                        for i in range(-(-accounts // 10))])
    secret = credentials_encrypt(password="pw")
    rows = []
    for i in range(accounts):
        equity = Decimal(1000 + (i * 37) % 250_000)
        rows.append(TradingAccount(
            user=members[i // 10], broker_name="Bench", server="Bench-Live",
            login=str(80_000_000 + i), is_primary=i % 10 == 0, credentials_encrypted=secret,
            currency=("USD", "EUR", "GBP")[i % 3], leverage=100, balance=equity,
            equity=equity, margin=Decimal(0), free_margin=equity,
            profit=Decimal((i % 21) - 10), peak_equity=equity * Decimal("1.05"),
            drawdown_percent=Decimal(i % 2500) / 100,
            sync_status="healthy" if i % 40 else "stale", last_synced_at=now,
            next_sync_at=now))
    created = TradingAccount.objects.bulk_create(rows, batch_size=1000)
    AccountGuardState.objects.bulk_create([AccountGuardState(
        account=a, level="critical" if i % 50 == 0 else "warning" if i % 10 == 0 else "ok")
        for i, a in enumerate(created)], batch_size=1000)
    positions = []
    for i, a in enumerate(created):
        for k in range(10):
            closed = k >= 5
            positions.append(Position(
                account=a, ticket=i * 100 + k, symbol="EURUSD", side="buy",
                volume=Decimal("0.1"), price_open=Decimal("1.07"), price_current=Decimal("1.08"),
                opened_at=now - timedelta(hours=3), last_synced_at=now,
                status="closed" if closed else "open", closed_at=now if closed else None,
                realized_pnl=Decimal("12.50") if closed else None))
    Position.objects.bulk_create(positions, batch_size=5000)
    for i, a in enumerate(created[:20]):
        episode = LiquidationEpisode.objects.create(
            account=a, reason="drawdown", started_at=now - timedelta(seconds=5 + i),
            recheck_at=now + timedelta(seconds=5), status="liquidating" if i % 2 else "warning")
        CloseRequest.objects.create(account=a, ticket=i * 100, key=f"episode:{episode.pk}",
                                    episode=episode, reason="drawdown")
    OpenDivergence.objects.bulk_create([OpenDivergence(
        account=a, key=f"k{i}", kind=("manual", "slippage", "missing")[i % 3], opened_at=now)
        for i, a in enumerate(created[:300])])
    # 24 h of snapshots, one per account every ``cadence`` seconds, written by the database
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO positions_equitysnapshot
                (account_id, taken_at, balance, equity, margin, free_margin, margin_level,
                 profit, peak_equity, drawdown_percent, open_positions, cash_flow)
            SELECT a.id, t, a.equity, a.equity + (extract(epoch FROM t)::bigint %% 97) - 48,
                   0, a.equity, NULL, 0, a.peak_equity, 0, 5, 0
            FROM accounts_tradingaccount a
            CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz,
                                       make_interval(secs => %s)) AS t
        """, [now - timedelta(hours=24), now, cadence])
        cursor.execute("ANALYZE")


def timed_get(client, runs: int, *, forget: str) -> tuple[list[float], int]:
    """``forget``: "" (every finished bucket cached), "newest" (the two newest forgotten:
    the render computes one bucket itself, as with no beat) or "all" (a cold cache: this
    bench's own Redis database is emptied)."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from dashboard.equity import CACHE_PREFIX, _window

    client.get("/admin/", secure=True)  # warm the process (templates, session, cache)
    times, queries = [], 0
    for _ in range(runs):
        if forget == "all":
            cache.clear()
        elif forget == "newest":
            width, _, stop = _window(timezone.now())
            cache.delete_many([f"{CACHE_PREFIX}:{width}:{stop - 1}",
                               f"{CACHE_PREFIX}:{width}:{stop - 2}"])
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            response = client.get("/admin/", secure=True)
            times.append(time.perf_counter() - t0)
        assert response.status_code == 200 and b'id="risk-dashboard"' in response.content
        queries = len(captured)
    return times, queries


def report(label: str, times: list[float], queries: int) -> None:
    print(f"  {label:<44} p50 {statistics.median(times) * 1000:7.1f} ms   "
          f"max {max(times) * 1000:7.1f} ms   {queries} queries   ({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--cadence", type=int, default=10,
                        help="seconds between two snapshots of one account")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the data of the last run (same --accounts/--cadence)")
    args = parser.parse_args()
    database_ensure()
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from accounts.models import User
    from positions.models import EquitySnapshot

    call_command("migrate", verbosity=0)
    if not args.reuse:
        t0 = time.perf_counter()
        tables_empty(PROJECT_APPS)
        seed(args.accounts, args.cadence)
        print(f"seeded in {time.perf_counter() - t0:.0f} s")
    setup_test_environment()  # the test client's template and query capture hooks
    snapshots = EquitySnapshot.objects.count()
    print(f"dashboard_bench: {args.accounts:,} accounts, {snapshots:,} equity snapshots "
          f"(24 h, one per {args.cadence} s per account), PostgreSQL")
    client = Client()
    client.force_login(User.objects.get(username="owner"))
    for label, forget, runs in (("GET /admin/, finished buckets cached", "", args.runs),
                                ("GET /admin/, one bucket computed (no beat)", "newest", args.runs),
                                ("GET /admin/, cold cache (newest computed)", "all",
                                 args.cold_runs)):
        times, queries = timed_get(client, runs, forget=forget)
        report(label, times, queries)
    # after a cache loss, the beat task fills the cache in runs of 24 buckets
    from django.core.cache import cache

    from dashboard.equity import sparklines_warm

    cache.clear()
    runs = []
    while True:
        t0 = time.perf_counter()
        computed = sparklines_warm()
        if not computed:
            break
        runs.append((computed, time.perf_counter() - t0))
    print(f"  beat task after a cache loss: {sum(n for n, _ in runs)} buckets in {len(runs)} "
          f"runs of {', '.join(f'{t:.1f} s' for _, t in runs)}")


if __name__ == "__main__":
    main()
