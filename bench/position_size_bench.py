"""Benchmark ``POST /api/v1/risk/position-size`` with the simulated MT5 terminal behind the bridge.

    .venv/bin/python bench/position_size_bench.py [--members 50] [--duration 10]
                                                  [--connections 8] [--rate 50] [--calls 200]
                                                  [--login-ms 0]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres), Redis on 127.0.0.1:6379 and ``wrk``.
Uses bench/api_bench.py's environment defaults, database helpers, gunicorn launch
(``bench.settings``, 2 sync workers, TCP_DEFER_ACCEPT listener) and wrk runner, but a
scratch database (``bench_position_size``) and Redis database (12) of its own: the other
benches share ``bench_backoffice`` and empty it when they start. What it does:

1. creates and migrates the scratch database and empties the project's tables
   (``--recreate-db`` drops it first, for when the migration files were rewritten);
2. starts a terminal bridge on the simulated terminal (``brokers.bridge.server --sim
   --manual-clock --members 0 --login-ms 0``: prices stand still and login switches are
   instant, so the figures measure this code, not a terminal's reconnect; ``--login-ms
   150`` measures with a real terminal's switch) and creates ``--members`` USD accounts
   in it (1:100, 10,000 USD); in the database, one member per account with that account
   linked (its own encrypted password), then syncs them once through the bridge
   (``accounts_sync``), so each has a fresh balance and free margin: the endpoint rejects
   figures older than MT5_ACCOUNT_FRESHNESS_MINUTES (the bench re-syncs between phases);
3. serves the project with gunicorn, MT5_BRIDGE_URL / MT5_BRIDGE_TOKEN pointing at the
   bridge and REDIS_URL for the cache, and checks once that a request answers 200 with
   ``setup_approved`` true (printed);
4. drives the endpoint with wrk (bench/position_size.lua): each request as a random
   member, for their own account, EURUSD at the simulator's price with a 50-pip stop, a
   new ``signal_id`` every request (the realistic case: every approved answer registers
   three new expected trades; a repeated signal would only look its trades up). (a) flat
   out on ``--connections`` connections: the maximum throughput, and the CPU each request
   costs per process (gunicorn, PostgreSQL, bridge, Redis, wrk, anything else: /proc);
   (b) paced at about ``--rate`` requests/s, as bench/api_bench.py paces (its probes, then
   up to two corrected re-runs): p50/p99 latency at that load. Afterwards it counts the
   risk logs, approvals and expected trades the runs left in the database;
5. times the service alone in this process (the view's account read,
   ``risk.selectors.account_for_sizing``, then ``risk.services.position_size``, ``--calls``
   calls against the same bridge, gunicorn stopped) and, separately, its bridge round trips
   (login and order_calc_margin through the gateway; symbol_info comes from the cache,
   ``risk.symbols``); counts and times its SQL statements and COMMITs (the JWT's user
   query, in the HTTP runs only, is not among them), and breaks its slowest 1 % down, to
   split the
   latency into bridge, service (database, sizing) and HTTP/DRF (auth, validation,
   rendering, queueing) shares;
6. prints a table beside the goal (p99 < 20 ms at the paced rate; never asserted), and
   warns when other processes took CPU (over 0.1 core) or PostgreSQL checkpointed during
   the measurements: the figures are then inflated.

Every request of the endpoint makes two calls through the bridge (login, order_calc_margin;
symbol_info is cached per server, symbol and account currency), which serves one
terminal from one thread: they queue there, whatever the number of gunicorn workers.
gunicorn, the bridge, PostgreSQL, Redis and wrk share this machine's cores, so the figures
are a lower bound for a production layout. Linux only (/proc, TCP_DEFER_ACCEPT).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A scratch database of its own: the other benches share ``bench_backoffice`` and empty it
# when they start, which would wipe this bench's members in the middle of a run.
BENCH_DB = "bench_position_size"
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}")
# And a Redis database of its own for the cache (api_bench and guard_bench use 13; the risk
# configuration is cached there by version, and versions restart with each scratch DB).
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
# Importing it sets the bench's environment defaults and DJANGO_SETTINGS_MODULE=bench.settings.
from bench import api_bench  # noqa: E402
from bench.api_bench import (  # noqa: E402
    WORKERS,
    WrkResult,
    cpu_busy_percent,
    ensure_database,
    listening_socket,
    measure_at_rate,
    reset_tables,
    run_wrk,
    start_gunicorn,
    stop,
    wait_until_answering,
)
from tests.support.processes import BridgeDidNotStart, bridge_start  # noqa: E402

PATH = "/api/v1/risk/position-size"
LUA_SCRIPT = ROOT / "bench" / "position_size.lua"
SIM_SERVER = "SimBroker-PositionSize"
FIRST_LOGIN = 81_000_001
BALANCE = "10000"
LEVERAGE = 100
STOP_POINTS = 500  # 50 pips: 0.30 / 0.21 / 0.09 lots on 10,000 USD at 3 % (the defaults)
WARMUP_SECONDS = 2
MAX_DURATION = 60  # seconds per wrk run: keeps each phase well inside the freshness limit
RESYNC_AFTER = 60  # seconds: figures older than this are re-synced before the next phase
GOAL_P99_MS = 20.0
SLOW_COMMIT_MS = 20.0
INTERFERENCE_CORES = 0.1  # other processes' CPU above which the report warns
PACE_CORRECTIONS = 2  # extra full runs when the paced run misses the rate by over 10 %


# --------------------------------------------------------------------------- database


def drop_database() -> None:
    """Drop this bench's scratch database (only ``bench_position_size``; api_bench's
    ensure_database creates it again). FORCE ends any session left on it."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    if name != BENCH_DB:
        raise SystemExit(f"--recreate-db drops only {BENCH_DB}, not {name!r} (DATABASE_URL)")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"dropped the scratch database {name}")


def pg_checkpoints() -> int | None:
    """Checkpoints the PostgreSQL server has made so far (all databases), or None.

    A checkpoint (on a timer, or requested: e.g. DROP DATABASE by another bench or test
    run on this server) flushes dirty pages and can stall the commits it overlaps.
    """
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
            return int(cursor.fetchone()[0])
    except DatabaseError:  # PostgreSQL 17 moved them to pg_stat_checkpointer
        return None


# --------------------------------------------------------------------------- bridge


@dataclass
class Bridge:
    url: str
    token: str
    process: subprocess.Popen

    def sim(self, name: str, /, *args: Any) -> Any:
        from brokers.bridge.client import BridgeTerminal

        return BridgeTerminal(self.url, self.token, timeout=10).sim(name, *args)


def start_bridge(token: str, log_path: Path, login_ms: float) -> Bridge:
    """A ``--sim --manual-clock`` bridge on a free port, as tests/conftest.py starts it,
    whose login switches cost ``login_ms`` milliseconds."""
    with log_path.open("w") as log:
        try:
            process, url = bridge_start("--login-ms", str(login_ms), token=token, stderr=log,
                                        new_session=True)
        except BridgeDidNotStart as error:
            raise SystemExit(f"{error}\n{log_path.read_text()}") from None
    return Bridge(url=url, token=token, process=process)


# --------------------------------------------------------------------------- seed


@dataclass(frozen=True)
class Member:
    token: str
    account_id: int
    side: str
    entry: Decimal
    stop: Decimal


def seed(bridge: Bridge, *, members: int) -> list[Member]:
    """``members`` accounts in the simulated terminal; a member and linked account each in
    the database, synced once; one access token per member; half buy, half sell."""
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.crypto import credentials_encrypt
    from accounts.models import TradingAccount, User

    for i in range(members):
        login = FIRST_LOGIN + i
        assert bridge.sim("sim_create_account", login, f"pw-{login}", f"view-{login}",
                          SIM_SERVER, "USD", LEVERAGE, BALANCE) is True
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"bench-size-{i:04d}", password=unusable) for i in range(members)]
    )
    accounts = TradingAccount.objects.bulk_create([
        TradingAccount(user=user, broker=TradingAccount.Broker.MT5, broker_name="Sim",
                       server=SIM_SERVER, login=str(FIRST_LOGIN + i), is_primary=True,
                       credentials_encrypted=credentials_encrypt(password=f"pw-{FIRST_LOGIN + i}"))
        for i, user in enumerate(users)
    ])
    sync([a.pk for a in accounts])
    bid, ask = (Decimal(str(x)) for x in bridge.sim("sim_quote", "EURUSD"))
    point = Decimal("0.00001")
    result = []
    for i, (user, account) in enumerate(zip(users, accounts, strict=True)):
        side = "buy" if i % 2 == 0 else "sell"
        entry = ask if side == "buy" else bid
        stop_loss = entry - STOP_POINTS * point if side == "buy" else entry + STOP_POINTS * point
        result.append(Member(token=str(AccessToken.for_user(user)), account_id=account.pk,
                             side=side, entry=entry, stop=stop_loss))
    return result


def sync(account_ids: list[int]) -> float:
    """One sync cycle through the bridge; aborts unless every account is healthy."""
    from accounts.models import TradingAccount
    from positions.services import accounts_sync

    t = time.perf_counter()
    outcome = accounts_sync(account_ids=account_ids)
    seconds = time.perf_counter() - t
    healthy = TradingAccount.objects.filter(pk__in=account_ids, sync_status="healthy",
                                            balance__isnull=False).count()
    if len(outcome.synced) != len(account_ids) or healthy != len(account_ids):
        raise SystemExit(f"sync failed: {len(outcome.synced)} of {len(account_ids)} synced, "
                         f"{healthy} healthy: {outcome}")
    return seconds


class Freshness:
    """Re-syncs the accounts at the start of a phase once RESYNC_AFTER seconds have passed
    since the last sync: a phase lasts at most PROBES x 3 s + (1 + PACE_CORRECTIONS) x
    MAX_DURATION = 189 s, so the figures stay younger than MT5_ACCOUNT_FRESHNESS_MINUTES
    (5 min) throughout; checked, since the setting may have been lowered."""

    def __init__(self, account_ids: list[int]) -> None:
        from django.conf import settings

        self.account_ids = account_ids
        self.synced_at = time.monotonic()
        longest = api_bench.PROBES * api_bench.PROBE_SECONDS + (
            1 + PACE_CORRECTIONS) * MAX_DURATION + RESYNC_AFTER
        if longest >= settings.MT5_ACCOUNT_FRESHNESS_MINUTES * 60:
            print(f"WARNING: MT5_ACCOUNT_FRESHNESS_MINUTES={settings.MT5_ACCOUNT_FRESHNESS_MINUTES}"
                  f" is shorter than a phase may last ({longest} s with --duration "
                  f"{MAX_DURATION}): keep --duration short or requests may be rejected as stale")

    def ensure(self) -> None:
        if time.monotonic() - self.synced_at > RESYNC_AFTER:
            seconds = sync(self.account_ids)
            self.synced_at = time.monotonic()
            print(f"    (re-synced the {len(self.account_ids)} accounts in {seconds:.1f} s: "
                  "their figures stay fresher than the endpoint's limit)", flush=True)


# --------------------------------------------------------------------------- HTTP


def post_json(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def payload(member: Member, signal_id: str) -> dict[str, Any]:
    return {"account_id": member.account_id, "signal_id": signal_id, "instrument": "EURUSD",
            "side": member.side, "entry_price": str(member.entry),
            "stop_loss": str(member.stop)}


def check_answer(url: str, member: Member, log_path: Path) -> None:
    status, body = post_json(url, member.token, payload(member, "bench-check-1"))
    if status != 200 or not isinstance(body, dict) or body.get("setup_approved") is not True:
        raise SystemExit(f"check failed: HTTP {status}: {str(body)[:1000]}\n"
                         f"gunicorn's log (tail):\n{log_path.read_text()[-4000:]}")
    print(f"check: HTTP 200, setup approved; the answer for account {member.account_id}:")
    print("    " + json.dumps(body))


# --------------------------------------------------------------------------- wrk


def paced_run(url: str, members_path: Path, *, connections: int, seconds: float,
              target: float) -> tuple[WrkResult, float, int]:
    """api_bench's ``measure_at_rate``, then up to PACE_CORRECTIONS corrected full runs.

    Its probes are short (3 s) and this endpoint's latency swings with the load, so the
    full run can land well off the target; each correction applies the same formula to the
    full run's own figures. Returns the last run, its mean pause and the corrections made.
    """
    paced, pause_ms = measure_at_rate(url, members_path, connections=connections,
                                      seconds=seconds, target=target)
    corrections = 0
    while abs(paced.rate - target) > 0.1 * target and corrections < PACE_CORRECTIONS:
        overhead_ms = max(0.0, connections * 1000 / paced.rate - pause_ms)
        pause_ms = max(1.0, connections * 1000 / target - overhead_ms)
        paced = run_wrk(url, members_path, connections=connections, seconds=seconds,
                        pause_ms=pause_ms)
        corrections += 1
    return paced, pause_ms, corrections


# --------------------------------------------------------------------------- in-process


@dataclass(frozen=True)
class Timing:
    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_ms: float  # this process's CPU time per call (user + system), mean
    queries: float | None = None  # SQL statements per call (COMMIT not counted)
    db_ms: float | None = None  # wall time waiting on those statements per call, mean
    commit_ms: float | None = None  # wall time of the COMMITs per call, mean
    slow_commits: int | None = None  # calls whose COMMIT took over SLOW_COMMIT_MS
    commit_max_ms: float | None = None
    # the slowest 1 % of calls, means in ms: (wall, CPU, waiting on statements, COMMIT)
    slowest: tuple[float, ...] | None = None


def timing(samples: list[float], cpu_seconds: float, **extra: Any) -> Timing:
    ms = sorted(s * 1000 for s in samples)
    return Timing(calls=len(ms), p50_ms=statistics.median(ms),
                  p99_ms=ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
                  mean_ms=statistics.fmean(ms), cpu_ms=cpu_seconds * 1000 / len(ms), **extra)


def time_in_process(members: list[Member], *, calls: int) -> tuple[Timing, Timing]:
    """(the gateway's bridge round trips alone, the whole service call).

    Accounts are read as the view reads them (``risk.selectors.account_for_sizing``: one
    query, counted with the service's); members are taken in turn, so the terminal
    switches account every call, as it mostly does under wrk's random members. The
    service's SQL statements are counted and timed (``execute_wrapper``).
    """
    from django.db import connection

    from accounts.gateways import account_gateway
    from accounts.models import TradingAccount
    from brokers.gateway import Side
    from risk.selectors import account_for_sizing
    from risk.services import position_size

    accounts = TradingAccount.objects.select_related("user").in_bulk(
        [m.account_id for m in members])
    loaded = [(m, accounts[m.account_id]) for m in members]

    samples: list[float] = []
    cpu = 0.0
    for n in range(calls):
        member, account = loaded[n % len(loaded)]
        c, t = time.process_time(), time.perf_counter()
        gateway = account_gateway(account)  # symbol_info: cached, not asked per request
        gateway.margin_required("EURUSD", Side(member.side), Decimal(1), member.entry)
        samples.append(time.perf_counter() - t)
        cpu += time.process_time() - c
    bridge = timing(samples, cpu)

    sql = [0, 0.0]  # statements, seconds
    commits: list[float] = []  # per call: seconds in COMMIT

    def count(execute: Any, query: str, params: Any, many: bool, context: Any) -> Any:
        t = time.perf_counter()
        try:
            return execute(query, params, many, context)
        finally:
            sql[0] += 1
            sql[1] += time.perf_counter() - t

    # COMMIT does not pass through execute wrappers: time this connection's own commit
    # (the atomic block's: it waits for the WAL flush, synchronous_commit).
    real_commit = connection._commit

    def timed_commit() -> Any:
        t = time.perf_counter()
        try:
            return real_commit()
        finally:
            commits[-1] += time.perf_counter() - t

    run = f"inproc-{int(time.time()):x}"
    samples, cpu = [], 0.0
    calls_split: list[tuple[float, float, float]] = []  # per call: wall, CPU, statements
    connection._commit = timed_commit
    try:
        for n in range(calls):
            member, linked = loaded[n % len(loaded)]
            commits.append(0.0)
            waited = sql[1]
            with connection.execute_wrapper(count):
                c, t = time.process_time(), time.perf_counter()
                # read as the view reads it (one query), a fresh instance per call
                account = account_for_sizing(user=linked.user, account_id=member.account_id)
                answer = position_size(account=account, requested_by=linked.user,
                                       signal_id=f"{run}-{n}", instrument="EURUSD",
                                       side=member.side, entry_price=member.entry,
                                       stop_loss=member.stop, take_profit=None)
                samples.append(time.perf_counter() - t)
                calls_split.append((samples[-1], time.process_time() - c, sql[1] - waited))
                cpu += calls_split[-1][1]
            if not answer["setup_approved"]:
                raise SystemExit(f"in-process call {n} not approved: "
                                 f"{answer['rejection_reason']} {answer['rejection_detail']}")
    finally:
        del connection._commit  # the class's method again
    # The slowest 1 % of the calls (at least 2): where did their time go?
    slow = sorted(range(calls), key=lambda i: -calls_split[i][0])[:max(2, calls // 100)]
    slowest = tuple(statistics.fmean(values) * 1000 for values in (
        [calls_split[i][0] for i in slow], [calls_split[i][1] for i in slow],
        [calls_split[i][2] for i in slow], [commits[i] for i in slow]))
    service = timing(samples, cpu, queries=sql[0] / calls, db_ms=sql[1] * 1000 / calls,
                     commit_ms=statistics.fmean(commits) * 1000,
                     slow_commits=sum(c * 1000 > SLOW_COMMIT_MS for c in commits),
                     commit_max_ms=max(commits) * 1000, slowest=slowest)
    return bridge, service


# --------------------------------------------------------------------------- CPU


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_by_process() -> dict[int, tuple[str, int, float]]:
    """{pid: (command, parent pid, CPU seconds so far)} of every process (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        # fields[0] is the state (stat field 3): ppid is field 4, utime 14, stime 15.
        found[int(entry.name)] = (comm, int(fields[1]),
                                  (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return found


def cpu_shares(before: dict[int, tuple[str, int, float]],
               after: dict[int, tuple[str, int, float]], *, gunicorn: int,
               bridge: int) -> dict[str, float]:
    """CPU seconds spent between two ``cpu_by_process`` snapshots, per component."""
    shares = dict.fromkeys(("gunicorn", "bridge", "postgres", "redis", "other"), 0.0)
    for pid, (comm, ppid, seconds) in after.items():
        spent = seconds - (before[pid][2] if pid in before else 0.0)
        if pid == gunicorn or ppid == gunicorn:
            shares["gunicorn"] += spent
        elif pid == bridge:
            shares["bridge"] += spent
        elif comm == "postgres":
            shares["postgres"] += spent
        elif comm.startswith("redis"):
            shares["redis"] += spent
        elif pid != os.getpid():
            shares["other"] += spent
    return shares


# --------------------------------------------------------------------------- report


def last_ids() -> tuple[int, int]:
    """The newest risk log's and expected trade's ids (0 if none)."""
    from reconciliation.models import ExpectedTrade
    from risk.models import TradeSetupRiskLog

    log = TradeSetupRiskLog.objects.order_by("-pk").values_list("pk", flat=True).first()
    trade = ExpectedTrade.objects.order_by("-pk").values_list("pk", flat=True).first()
    return log or 0, trade or 0


def outcome_counts(since: tuple[int, int]) -> tuple[int, int, int, dict[str, int]]:
    """(risk logs, approved ones, expected trades registered, {rejection reason: count})
    after ``since`` (last_ids)."""
    from django.db.models import Count

    from reconciliation.models import ExpectedTrade
    from risk.models import TradeSetupRiskLog

    logs = TradeSetupRiskLog.objects.filter(pk__gt=since[0])
    rejected = dict(logs.filter(setup_approved=False).values_list("rejection_reason")
                    .annotate(n=Count("pk")).values_list("rejection_reason", "n"))
    return (logs.count(), logs.filter(setup_approved=True).count(),
            ExpectedTrade.objects.filter(pk__gt=since[1]).count(), rejected)


def print_report(top: WrkResult, paced: WrkResult, bridge: Timing, service: Timing, *,
                 connections: int, target: float, interference: dict[str, float]) -> None:
    header = (f"{'measurement':<50}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>8}"
              f"{'errors':>8}")
    print()
    print(header)
    print("-" * len(header))
    rows = [
        (f"HTTP, {connections} connections flat out", top.rate, top, None,
         top.non2xx + top.socket_errors),
        (f"HTTP, paced at ~{target:g} req/s", paced.rate, paced, None,
         paced.non2xx + paced.socket_errors),
        (f"service in-process (account read + position_size, {service.calls} calls)",
         1000 / service.mean_ms, service, service.cpu_ms, 0),
        ("  of which bridge: login+calc_margin", 1000 / bridge.mean_ms, bridge,
         bridge.cpu_ms, 0),
    ]
    for label, rate, run, cpu, errors in rows:
        cpu_text = "" if cpu is None else f"{cpu:.1f}"
        print(f"{label:<50}{rate:>8,.0f}{run.p50_ms:>9.1f}{run.p99_ms:>9.1f}{cpu_text:>8}"
              f"{errors:>8}")
    print("(in-process rows: one call at a time, req/s = 1 / mean, CPU ms = this process's "
          "CPU per call; errors: non-2xx answers + socket errors)")
    print(f"in-process service, per call (means): {service.queries:.0f} SQL statements, "
          f"{service.db_ms:.1f} ms waiting on them; COMMIT {service.commit_ms:.1f} ms "
          f"({service.slow_commits} of {service.calls} over {SLOW_COMMIT_MS:g} ms, the "
          f"slowest {service.commit_max_ms:.0f} ms: the WAL flush); Python CPU "
          f"{service.cpu_ms:.1f} ms; the bridge's round trips {bridge.mean_ms:.1f} ms")
    if service.slowest:
        wall, cpu, statements, commit = service.slowest
        print(f"its slowest 1 % ({max(2, service.calls // 100)} calls), means: {wall:.1f} ms, "
              f"of which CPU {cpu:.1f} ms, statements {statements:.1f} ms (wall, their client "
              f"CPU included), COMMIT {commit:.1f} ms")
    rest = service.p50_ms - bridge.p50_ms
    http = paced.p50_ms - service.p50_ms
    print(f"p50 split at ~{paced.rate:,.0f} req/s: bridge {bridge.p50_ms:.1f} ms, rest of the "
          f"service (guards, database, sizing) {rest:.1f} ms, HTTP + DRF + queueing (JWT, "
          f"user and account queries, validation, rendering, waiting for a worker or a core) "
          f"{http:.1f} ms")
    print()
    print(f"goal: p99 < {GOAL_P99_MS:g} ms at ~{target:g} req/s: {paced.p99_ms:.1f} ms "
          f"(at {paced.rate:,.0f} req/s) -> {'met' if paced.p99_ms < GOAL_P99_MS else 'MISSED'}")
    checkpoints = interference.pop("checkpoints", None)
    if checkpoints:
        print(f"note: PostgreSQL made {checkpoints:g} checkpoint(s) during the measurements "
              "(a checkpoint can stall the commits it overlaps: look at the p99s)")
    busy = {phase: cores for phase, cores in interference.items() if cores > INTERFERENCE_CORES}
    if busy:
        print("WARNING: other processes on this machine used " + ", ".join(
            f"{cores:.1f} cores during {phase}" for phase, cores in busy.items())
            + ": those figures are inflated; run again on a quiet machine")
    if abs(paced.rate - target) > 0.1 * target:
        print(f"note: (b) ran at {paced.rate:,.0f} req/s, more than 10 % off the target "
              f"(the maximum is {top.rate:,.0f} req/s)")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50, help="target requests/s for (b)")
    parser.add_argument("--calls", type=int, default=200, help="in-process service calls")
    parser.add_argument("--login-ms", type=float, default=0.0,
                        help="the simulated terminal's login switch, ms (0: instant; 150: "
                             "a real terminal's; every request switches account)")
    parser.add_argument("--recreate-db", action="store_true",
                        help=f"drop and recreate the scratch database {BENCH_DB} first (when "
                             "its migration history no longer matches the migration files)")
    args = parser.parse_args()
    if args.members < 1 or args.calls < 1 or args.connections < 1 or args.rate <= 0:
        parser.error("--members, --calls and --connections must be >= 1, --rate > 0")
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION}] s: the accounts' figures "
                     "must stay fresh through a phase")
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (Debian/Ubuntu), then run again.",
              file=sys.stderr)
        sys.exit(1)
    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so gunicorn and the bridge stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # api_bench.run_wrk runs its module's LUA_SCRIPT: this bench's script takes the same
    # arguments (a file, a pause) and prints the same WRK_RESULT line.
    api_bench.LUA_SCRIPT = LUA_SCRIPT

    database = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    if not database.startswith("bench_"):
        # The bench empties every table of the project's apps: never a real database.
        raise SystemExit(f"DATABASE_URL names {database!r}: this bench only runs on a scratch "
                         "database whose name starts with bench_ (unset DATABASE_URL for "
                         f"{BENCH_DB})")
    if args.recreate_db:
        drop_database()
    ensure_database()
    # CPU of other processes (not this bench's gunicorn, bridge, PostgreSQL, Redis, wrk),
    # in cores, during the phases it is measured for.
    interference: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="position_size_bench-") as tmp:
        bridge_log = Path(tmp) / "bridge.log"
        bridge = start_bridge(os.environ["MT5_BRIDGE_TOKEN"], bridge_log, args.login_ms)
        server: subprocess.Popen | None = None
        try:
            # Before django.setup(): this process's settings and gunicorn's (which inherits
            # this environment) both point at the bridge.
            os.environ["MT5_BRIDGE_URL"] = bridge.url
            import django

            django.setup()
            from django.conf import settings
            from django.core.cache import cache
            from django.core.management import call_command
            from django.db import connection

            from risk.services import VERSION_KEY

            call_command("migrate", verbosity=0)
            reset_tables()
            cache.delete(VERSION_KEY)  # the configuration is re-read from the emptied tables
            t = time.perf_counter()
            members = seed(bridge, members=args.members)
            freshness = Freshness([m.account_id for m in members])
            print(f"bridge {bridge.url} (simulated terminal, manual clock); {args.members} "
                  f"members with one synced USD account each ({BALANCE} USD, 1:{LEVERAGE}) in "
                  f"{time.perf_counter() - t:.1f} s")
            connection.close()  # no idle transaction-less connection held through the runs

            members_path = Path(tmp) / "members.txt"
            members_path.write_text("".join(
                f"{m.token} {m.account_id} {m.side} {m.entry} {m.stop}\n" for m in members))
            log_path = Path(tmp) / "gunicorn.log"
            busy_before = cpu_busy_percent()
            sock = listening_socket()
            base = "http://{}:{}".format(*sock.getsockname())
            server = start_gunicorn(sock, log_path)
            sock.close()  # gunicorn holds its own copy
            wait_until_answering(base, server, log_path)
            print(f"gunicorn {base}: config.wsgi with bench.settings (DEBUG off), {WORKERS} "
                  f"sync workers, TCP_DEFER_ACCEPT listener; MT5_BRIDGE_URL={bridge.url}, "
                  f"cache {os.environ['REDIS_URL']}")
            if busy_before is not None:
                print(f"CPU busy before the run (other processes): {busy_before:.0f} % of "
                      f"{os.cpu_count()} cores"
                      + ("  <- the machine is not idle: expect lower, noisier figures"
                         if busy_before > 15 else ""))
            url = base + PATH
            check_answer(url, random.Random(1).choice(members), log_path)
            before = last_ids()
            connection.close()
            print("signal ids: a new one every request (the realistic case: each approved "
                  "answer registers three new expected trades; one repeated signal would "
                  "only look its trades up, a cheaper path)")
            run_wrk(url, members_path, connections=args.connections, seconds=WARMUP_SECONDS)
            checkpoints_before = pg_checkpoints()

            freshness.ensure()
            print(f"(a) max throughput: {args.connections} connections flat out, "
                  f"{args.duration:g} s", flush=True)
            procs_before = cpu_by_process()
            wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            top = run_wrk(url, members_path, connections=args.connections,
                          seconds=args.duration)
            wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            shares = cpu_shares(procs_before, cpu_by_process(), gunicorn=server.pid,
                                bridge=bridge.process.pid)
            shares["wrk"] = (wrk_after.ru_utime + wrk_after.ru_stime
                             - wrk_before.ru_utime - wrk_before.ru_stime)
            print(f"    {top.rate:,.0f} req/s, p50 {top.p50_ms:.1f} ms, p99 {top.p99_ms:.1f} ms "
                  f"({top.requests:,} requests, {top.non2xx} non-2xx, {top.socket_errors} "
                  "socket errors)", flush=True)
            used = sum(shares.values())
            interference["(a)"] = shares["other"] / top.seconds
            print("    CPU per request: " + ", ".join(
                f"{name} {seconds * 1000 / max(1, top.requests):.1f} ms"
                for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1]))
                + f"; all {used * 1000 / max(1, top.requests):.1f} ms = "
                f"{100 * used / (top.seconds * (os.cpu_count() or 1)):.0f} % of the "
                f"{os.cpu_count()} cores over the run", flush=True)

            freshness.ensure()
            print(f"(b) latency at ~{args.rate:g} req/s: {args.connections} connections, each "
                  "waiting a random pause before each request (mean set by short probes), as "
                  "bench/api_bench.py paces; closed loop, so p99 reads lower than from an "
                  "open-loop generator", flush=True)
            paced, pause_ms, corrections = paced_run(
                url, members_path, connections=args.connections, seconds=args.duration,
                target=args.rate)
            print(f"    {paced.rate:,.0f} req/s (mean pause {pause_ms:.1f} ms, "
                  f"{corrections} corrected re-runs), p50 {paced.p50_ms:.1f} ms, p99 "
                  f"{paced.p99_ms:.1f} ms ({paced.requests:,} requests, {paced.non2xx} "
                  f"non-2xx, {paced.socket_errors} socket errors)", flush=True)
            if pause_ms <= 1.0:
                print("    note: the pause fell to its 1 ms floor: the target is beyond what "
                      "the server sustains here, so (b) ran flat out, not paced")
            stop(server)
            logs, approved, trades, rejected = outcome_counts(before)
            print(f"wrk runs (warm-up and probes included): {logs:,} risk logs, {approved:,} "
                  f"approved, {trades:,} expected trades registered"
                  + (f"  <- REJECTED: {rejected}" if rejected else ""))

            freshness.ensure()
            print(f"in-process: {args.calls} gateway calls, then {args.calls} service calls "
                  f"(gunicorn stopped; bridge {settings.MT5_BRIDGE_URL})", flush=True)
            procs_before, t = cpu_by_process(), time.monotonic()
            bridge_timing, service_timing = time_in_process(members, calls=args.calls)
            interference["in-process"] = cpu_shares(
                procs_before, cpu_by_process(), gunicorn=-1,
                bridge=bridge.process.pid)["other"] / (time.monotonic() - t)
            checkpoints_after = pg_checkpoints()
            if checkpoints_before is not None and checkpoints_after is not None:
                interference["checkpoints"] = checkpoints_after - checkpoints_before
        finally:
            if server is not None:
                stop(server)
            stop(bridge.process)
        print_report(top, paced, bridge_timing, service_timing,
                     connections=args.connections, target=args.rate,
                     interference=interference)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
