"""Benchmark one full sync cycle: N simulated accounts × 5 positions on PostgreSQL.

    .venv/bin/python bench/sync_bench.py [--accounts 2000] [--batch 500]

What it does, in one process (one "worker"):
1. starts a ``--sim`` terminal bridge holding N accounts with 5 open positions each;
2. creates a scratch PostgreSQL database (``bench_backoffice``), migrates it and links the
   N accounts;
3. **fetch**: reads every account through the real bridge and mt5 adapter (network side);
4. **apply**: writes the results with ``sync_results_apply`` in batches (database side),
   twice: the first cycle inserts the positions, the second is the steady state (updates);
5. **naive**: the same steady-state writes as a per-row ORM loop (get, save,
   update_or_create per position, create snapshot and log), for the ratio.

6. **fleet** (issue 11): the read rate of the whole pipeline (``pipeline.services.
   accounts_sync``: lease, read, apply, reconcile, guard) over 1, 2 and 4 terminals
   (``--fleet-accounts`` accounts, ``--fleet-login-ms`` per login switch, as a real
   terminal), with as many worker threads as terminals taking per-terminal batches from
   one queue, every call sequence holding its terminal's lease.

It prints accounts per second and database queries per account for each phase. Timings
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402
    bench_environment,
    bridge_start,
    database_ensure,
)

BENCH_DB = "bench_sync"  # its own: every bench empties its database
bench_environment(BENCH_DB)


def start_bridge(accounts: int) -> tuple[subprocess.Popen, str]:
    return bridge_start(
        "--bench-accounts", str(accounts),
        # instant login switches, as the figures in README were measured (the bridge's
        # default is a realistic 150 ms: brokers/sim/README.md, "Login switch latency")
        "--login-ms", "0")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--fleet-accounts", type=int, default=200)
    parser.add_argument("--fleet-login-ms", type=float, default=150.0)
    parser.add_argument("--fleet-only", action="store_true")
    args = parser.parse_args()

    database_ensure()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, reset_queries, transaction

    settings.DEBUG = True  # count queries
    call_command("migrate", verbosity=0)

    from accounts.gateways import account_gateway
    from accounts.models import TradingAccount, User
    from accounts.services import trading_account_create
    from brokers.sim.runtime import BENCH_FIRST_LOGIN, BENCH_SERVER
    from positions.models import EquitySnapshot, Position, SyncLog
    from positions.services import (
        _pending_positions,
        account_fetch,
        sync_lease_acquire,
        sync_results_apply,
    )

    with transaction.atomic(), connection.cursor() as cursor:
        # The reconciliation log refuses TRUNCATE (an append-only trigger): this scratch
        # database skips ordinary triggers for this one transaction (superuser only).
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "TRUNCATE positions_position, positions_equitysnapshot, positions_synclog, "
            "positions_instrument, accounts_tradingaccount RESTART IDENTITY CASCADE"
        )
    user, _ = User.objects.get_or_create(username="bench")
    if args.fleet_only:
        fleet_phase(args, user)
        return
    print(f"seeding {args.accounts} accounts in the bridge and the database ...", flush=True)
    bridge, url = start_bridge(args.accounts)
    settings.MT5_BRIDGE_URL = url
    try:
        from accounts.crypto import credentials_encrypt

        token_cache = {}
        rows = []
        for i in range(args.accounts):
            login = BENCH_FIRST_LOGIN + i
            rows.append(TradingAccount(
                user=user, broker="mt5", broker_name="Bench", server=BENCH_SERVER,
                login=str(login), is_primary=(i == 0),
                credentials_encrypted=token_cache.setdefault(
                    login, credentials_encrypt(password=f"bench-{login}")),
            ))
        TradingAccount.objects.bulk_create(rows, batch_size=1000)
        _ = trading_account_create  # the service is used by the demo; bulk here for speed
        accounts = list(TradingAccount.objects.filter(server=BENCH_SERVER).order_by("id"))
        ids = [a.pk for a in accounts]

        # --- fetch through the bridge (network side) ---
        t0 = time.perf_counter()
        pending = _pending_positions(ids)
        fetches = [account_fetch(account=a, gateway=account_gateway(a), pending=pending[a.pk],
                                 known_symbols=set()) for a in accounts]
        fetch_seconds = time.perf_counter() - t0
        failed = sum(not f.ok for f in fetches)
        positions = sum(len(f.positions or ()) for f in fetches)
        print(f"fetch through bridge: {len(fetches)} accounts, {positions} positions, "
              f"{failed} failed, {fetch_seconds:.2f} s = "
              f"{len(fetches) / fetch_seconds:,.0f} accounts/s (one terminal)")

        def apply_all(label: str) -> float:
            reset_queries()
            t = time.perf_counter()
            for start in range(0, len(fetches), args.batch):
                chunk = fetches[start:start + args.batch]
                token, leased = sync_lease_acquire(account_ids=[f.account_id for f in chunk])
                assert len(leased) == len(chunk)
                outcome = sync_results_apply(fetches=chunk, token=token, batch_size=args.batch)
                assert len(outcome.synced) == len(chunk)
            seconds = time.perf_counter() - t
            queries = len(connection.queries)
            batches = -(-len(fetches) // args.batch)
            print(f"apply ({label}): {len(fetches)} accounts in {seconds:.2f} s = "
                  f"{len(fetches) / seconds:,.0f} accounts/s; {queries} queries = "
                  f"{queries / batches:.0f} per batch of {args.batch} "
                  f"({queries / len(fetches):.3f} per account)")
            return seconds

        apply_all("cycle 1, inserts")
        steady = apply_all("cycle 2, steady state")

        # --- naive per-row ORM loop over the same data ---
        reset_queries()
        t = time.perf_counter()
        sample = fetches[: max(200, len(fetches) // 10)]
        for fetch in sample:
            with transaction.atomic():
                account = TradingAccount.objects.get(pk=fetch.account_id)
                state = fetch.state
                account.balance, account.equity = state.balance, state.equity
                account.margin, account.free_margin = state.margin, state.free_margin
                account.margin_level, account.profit = state.margin_level, state.profit
                account.save()
                for p in fetch.positions:
                    Position.objects.update_or_create(
                        account=account, ticket=p.ticket,
                        defaults={"symbol": p.symbol, "side": p.side.value, "volume": p.volume,
                                  "price_open": p.price_open, "price_current": p.price_current,
                                  "profit": p.profit, "swap": p.swap, "magic": p.magic,
                                  "comment": p.comment, "opened_at": p.opened_at,
                                  "last_synced_at": fetch.started_at})
                EquitySnapshot.objects.create(
                    account=account, taken_at=fetch.started_at, balance=state.balance,
                    equity=state.equity, margin=state.margin, free_margin=state.free_margin,
                    margin_level=state.margin_level, profit=state.profit,
                    peak_equity=state.equity, drawdown_percent=0,
                    open_positions=len(fetch.positions))
                SyncLog.objects.create(account=account, started_at=fetch.started_at,
                                       duration_ms=fetch.duration_ms, result="ok")
        naive_seconds = time.perf_counter() - t
        naive_rate = len(sample) / naive_seconds
        print(f"naive per-row ORM loop: {len(sample)} accounts in {naive_seconds:.2f} s = "
              f"{naive_rate:,.0f} accounts/s; {len(connection.queries) / len(sample):.1f} "
              f"queries per account")
        batched_rate = len(fetches) / steady
        print(f"ratio (steady-state apply / naive): {batched_rate / naive_rate:.1f}x")
    finally:
        bridge.terminate()
        bridge.wait(timeout=10)
    fleet_phase(args, user)


def _fleet_seed(user, n: int, urls: list[str]):
    """Empty the tables, link ``n`` bench accounts, register a terminal per URL and
    spread the accounts; returns a queue of batches of 20, one terminal each."""
    import queue

    from accounts.crypto import credentials_encrypt
    from accounts.models import Terminal, TradingAccount
    from accounts.terminals import terminals_rebalance
    from brokers.sim.runtime import BENCH_FIRST_LOGIN, BENCH_SERVER
    from tests.support.processes import tables_empty

    tables_empty(("accounts", "positions", "reconciliation", "risk", "guards",
                  "notifications"))
    user.save()
    TradingAccount.objects.bulk_create([
        TradingAccount(user=user, broker="mt5", broker_name="Bench", server=BENCH_SERVER,
                       login=str(BENCH_FIRST_LOGIN + i), is_primary=(i == 0),
                       credentials_encrypted=credentials_encrypt(
                           password=f"bench-{BENCH_FIRST_LOGIN + i}"))
        for i in range(n)])
    for k, url in enumerate(urls):
        Terminal.objects.create(name=f"bench-{k + 1}", url=url, capacity=n)
    terminals_rebalance(limit=n)
    work: queue.Queue[list[int]] = queue.Queue()
    groups: dict[int, list[int]] = {}
    for pk, tid in TradingAccount.objects.order_by("id").values_list("id", "terminal_id"):
        groups.setdefault(tid, []).append(pk)
    # round-robin over the terminals, as sync_dispatch queues them
    per_terminal = [[g[i:i + 20] for i in range(0, len(g), 20)] for g in groups.values()]
    for row in zip_longest(*per_terminal):
        for batch in row:
            if batch is not None:
                work.put(batch)
    return work


def _fleet_read(work, workers: int) -> tuple[int, float]:
    """``workers`` threads (own connections) sync the batches of ``work`` through the
    pipeline; returns (accounts synced, seconds)."""
    import queue
    import threading

    from django.db import connection

    from pipeline.services import accounts_sync

    synced: list[int] = []

    def worker() -> None:
        try:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                synced.extend(accounts_sync(account_ids=batch).synced)
        finally:
            connection.close()

    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return len(synced), time.perf_counter() - t


def fleet_phase(args: argparse.Namespace, user) -> None:
    """Read rate of the whole pipeline over 1, 2 and 4 terminals (module docstring, 6)."""
    n = args.fleet_accounts
    print(f"\nfleet: {n} accounts x 5 positions, login switch {args.fleet_login_ms:g} ms, "
          "whole pipeline (read, apply, reconcile, guard), batches of 20 per terminal",
          flush=True)
    bridges = [bridge_start("--bench-accounts", str(n), "--login-ms",
                            str(args.fleet_login_ms)) for _ in range(4)]
    try:
        rates = {}
        for terminals in (1, 2, 4):
            work = _fleet_seed(user, n, [url for _, url in bridges[:terminals]])
            synced, seconds = _fleet_read(work, terminals)
            rates[terminals] = synced / seconds
            print(f"  {terminals} terminal(s), {terminals} worker(s): {synced}/{n} read "
                  f"in {seconds:.1f} s = {rates[terminals]:,.1f} accounts/s "
                  f"({rates[terminals] / rates[1]:.1f}x one terminal)", flush=True)
    finally:
        for process, _ in bridges:
            process.terminate()
        for process, _ in bridges:
            process.wait(timeout=10)

if __name__ == "__main__":
    main()
