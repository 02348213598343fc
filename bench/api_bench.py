"""Benchmark ``GET /api/v1/positions`` (DRF) against a bare Django view of the same JSON.

    .venv/bin/python bench/api_bench.py [--members 200] [--positions 10] [--duration 15]
                                        [--connections 16] [--rate 300]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres), Redis on 127.0.0.1:6379 and ``wrk``
(``apt-get install wrk``). What it does:

1. creates and migrates a scratch PostgreSQL database (``bench_backoffice``, shared with
   bench/sync_bench.py), empties the project's tables and seeds ``--members`` members, each
   with one primary USD account (healthy, just synced) and ``--positions`` open EURUSD
   positions; mints one JWT access token per member (valid for a day, bench/settings.py);
2. serves the project with gunicorn (``config.wsgi`` with ``bench.settings``: the project's
   settings plus ``/bench/bare-positions``, bench/bare.py: the same JSON from the same
   tables with plain Django, two queries instead of three), two sync workers, no access
   log, on a free local port, and checks once that both endpoints answer 200 with the same
   positions;
3. drives each endpoint with wrk (bench/tokens.lua: each request carries a random member's
   token): (a) flat out on ``--connections`` connections, for the maximum throughput;
   (b) at about ``--rate`` requests/s, for the latency at that load. wrk has no
   constant-rate mode, so in (b) each connection waits a random pause before every request,
   its mean set so that connections / (pause + response time) ≈ rate (corrected by short
   probes); the rate actually achieved is reported. The listening socket has
   TCP_DEFER_ACCEPT (see ``listening_socket``), so those pauses do not tie up a worker;
4. prints requests/s, p50/p99 latency and the DRF/bare throughput ratio, beside the goals
   (p99 < 50 ms at the target rate; DRF ≥ 0.5 × bare throughput). Numbers are printed,
   never asserted.

gunicorn, PostgreSQL and wrk share this machine's cores, so the absolute numbers are a lower
bound for a dedicated web host; the DRF/bare ratio is the comparable figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402
    bench_environment,
    database_ensure,
    tables_empty,
)

BENCH_DB = "bench_backoffice"
# The bench process and gunicorn (which inherits this environment) use the same settings.
bench_environment(BENCH_DB, redis_url="redis://127.0.0.1:6379/13",
                  settings_module="bench.settings")

DRF_PATH = "/api/v1/positions"
BARE_PATH = "/bench/bare-positions"
LUA_SCRIPT = ROOT / "bench" / "tokens.lua"
WORKERS = 2
WARMUP_SECONDS = 2
PROBE_SECONDS = 3
PROBES = 3
# The project's tables (dependants go with CASCADE); auth, contenttypes, celery beat stay.
PROJECT_APPS = ("accounts", "positions", "reconciliation", "risk", "guards", "notifications")
# Goals to print beside the results (never asserted).
GOAL_P99_MS = 50.0
GOAL_RATIO = 0.5


# --------------------------------------------------------------------------- database


def ensure_database() -> None:
    """Create the scratch database if it is missing (bench/position_size_bench.py too)."""
    database_ensure()


def reset_tables() -> None:
    """Empty every table of the project's apps (the scratch database only)."""
    tables_empty(PROJECT_APPS)


def seed(*, members: int, positions: int, rng: random.Random) -> list[str]:
    """Members, their primary accounts and open positions; one access token per member.

    Figures are EURUSD as MetaTrader 5 would report them on a 1:100 USD account: prices to
    5 digits, profit from the price move, margin from the contract size and leverage.
    """
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.crypto import credentials_encrypt
    from accounts.models import TradingAccount, User
    from positions import pnl
    from positions.models import Position

    now = timezone.now()
    contract = Decimal(100_000)
    leverage = 100
    bot_magic = 20240101
    unusable = make_password(None)
    # One ciphertext for every account: the API never decrypts it.
    credentials = credentials_encrypt(password="bench-password")

    users = User.objects.bulk_create(
        [User(username=f"bench-member-{i:04d}", password=unusable) for i in range(members)]
    )
    accounts: list[TradingAccount] = []
    rows: list[Position] = []
    ticket = 90_000_000
    for i, user in enumerate(users):
        account = TradingAccount(
            user=user, broker=TradingAccount.Broker.MT5, broker_name="Bench",
            server="BenchBroker-Live", login=str(7_000_000 + i), is_primary=True,
            credentials_encrypted=credentials, verified_at=now, currency="USD",
            leverage=leverage, credit=Decimal("0.00"),
            sync_status=TradingAccount.SyncStatus.HEALTHY, last_synced_at=now,
            last_sync_attempt_at=now, next_sync_at=now + timedelta(days=1),
        )
        balance = Decimal(rng.randint(2_000_00, 50_000_00)) / 100
        floating = Decimal("0.00")
        margin = Decimal("0.00")
        for _ in range(positions):
            side = rng.choice((Position.Side.BUY, Position.Side.SELL))
            direction = 1 if side == Position.Side.BUY else -1
            volume = Decimal(rng.randint(1, 100)) / 100  # 0.01 to 1.00 lots
            price_open = Decimal(rng.randint(105_000, 110_000)) / 100_000
            price_current = price_open + Decimal(rng.randint(-600, 600)) / 100_000  # ±60 pips
            profit = pnl.money(pnl.forex_profit(side=side, volume=volume, price_open=price_open,
                                                price_close=price_current, contract_size=contract))
            swap = pnl.money(-Decimal(rng.randint(0, 700)) / 100 * volume)
            protected = rng.random() < 0.7  # most positions carry a stop loss and take profit
            ticket += 1
            rows.append(Position(
                account=account, ticket=ticket, symbol="EURUSD", side=side, volume=volume,
                price_open=price_open, price_current=price_current,
                sl=price_open - direction * Decimal("0.00500") if protected else None,
                tp=price_open + direction * Decimal("0.01000") if protected else None,
                swap=swap, profit=profit,
                magic=bot_magic if rng.random() < 0.6 else 0,
                comment="bot" if rng.random() < 0.6 else "",
                opened_at=now - timedelta(minutes=rng.randint(5, 14 * 24 * 60)),
                status=Position.Status.OPEN, last_synced_at=now,
            ))
            floating += profit + swap
            # EURUSD margin is in EUR (the base currency): in USD at the entry price.
            margin += pnl.forex_margin(volume=volume, contract_size=contract,
                                       leverage=leverage) * price_open
        account.balance = balance
        account.equity = balance + floating
        account.profit = floating
        account.margin = pnl.money(margin)
        account.free_margin = account.equity - account.margin
        account.margin_level = pnl.margin_level(equity=account.equity, margin=account.margin)
        account.peak_equity = max(balance, account.equity) + Decimal(rng.randint(0, 50_000)) / 100
        account.drawdown_percent = pnl.drawdown_percent(peak_equity=account.peak_equity,
                                                        equity=account.equity)
        accounts.append(account)
    TradingAccount.objects.bulk_create(accounts, batch_size=1000)  # sets each account's pk
    Position.objects.bulk_create(rows, batch_size=1000)
    return [str(AccessToken.for_user(user)) for user in users]


# --------------------------------------------------------------------------- gunicorn


def listening_socket() -> socket.socket:
    """A socket on a free local port, for gunicorn (``--bind fd://N``).

    TCP_DEFER_ACCEPT: the kernel hands a connection to accept() only once its first bytes
    (the request) have arrived. gunicorn's sync workers serve one connection at a time and
    block reading the request after accept(); wrk's paced runs open each connection, then
    pause (bench/tokens.lua), so without it a worker would sit idle on each pause and the
    latency would measure that, not the API. Flat-out runs send at once: no difference.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)  # seconds
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def start_gunicorn(sock: socket.socket, log_path: Path) -> subprocess.Popen:
    """The production entry (config.wsgi) with bench.settings (from the environment)."""
    with log_path.open("w") as log:
        # A session of its own: Ctrl-C reaches only this script, which then stops gunicorn.
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"fd://{sock.fileno()}",
             "--workers", str(WORKERS), "--log-level", "warning", "--chdir", str(ROOT)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, pass_fds=[sock.fileno()],
            start_new_session=True,
        )


def wait_until_answering(base: str, server: subprocess.Popen, log_path: Path,
                         timeout: float = 30) -> None:
    """Any HTTP answer (401 without a token) means the workers are up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.returncode}):\n{log_path.read_text()}")
        try:
            urllib.request.urlopen(base + BARE_PATH, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s:\n{log_path.read_text()}")


def stop(server: subprocess.Popen) -> None:
    """Graceful stop (SIGTERM), then SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# --------------------------------------------------------------------------- checks


def get_json(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def check_same_answer(base: str, token: str, expected_positions: int) -> None:
    """Both endpoints: 200 and the same tickets for one token; abort otherwise."""
    drf_status, drf = get_json(base + DRF_PATH, token)
    bare_status, bare = get_json(base + BARE_PATH, token)
    if drf_status != 200 or bare_status != 200:
        raise SystemExit(f"check failed: DRF {drf_status} {str(drf)[:300]}; "
                         f"bare {bare_status} {str(bare)[:300]}")
    drf_tickets = [p["ticket"] for p in drf["positions"]]
    bare_tickets = [p["ticket"] for p in bare["positions"]]
    if set(drf_tickets) != set(bare_tickets) or len(drf_tickets) != expected_positions:
        raise SystemExit(f"check failed: DRF tickets {sorted(drf_tickets)}, "
                         f"bare tickets {sorted(bare_tickets)}, expected {expected_positions}")
    print(f"check: both endpoints answer 200 with the same {len(drf_tickets)} position "
          f"tickets for account {drf['account_id']}", end="")
    # The rest of the body should match too, but for the seconds that passed in between.
    for body in (drf, bare):
        body["sync"].pop("age_seconds", None)
    if drf == bare:
        print("; the bodies are identical (but for sync.age_seconds)")
    else:
        keys = sorted(k for k in drf.keys() | bare.keys() if drf.get(k) != bare.get(k))
        print(f"\nWARNING: the bodies differ in {keys}: bench/bare.py is out of step with "
              "AccountPositionsOutput")


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run_wrk(url: str, tokens_path: Path, *, connections: int, seconds: float,
            pause_ms: float = 0) -> WrkResult:
    """One wrk run, two threads (this machine's cores), flat out or paced (``pause_ms``)."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s",
               "--timeout", "10s", "-s", str(LUA_SCRIPT), url, "--", str(tokens_path),
               f"{pause_ms:.2f}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"^WRK_RESULT (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({done.returncode}): {' '.join(command)}\n"
                         f"{done.stdout}{done.stderr}")
    values = {k: int(float(v)) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return WrkResult(
        requests=values["requests"], seconds=values["duration_us"] / 1e6,
        mean_ms=values["mean_us"] / 1e3, p50_ms=values["p50_us"] / 1e3,
        p90_ms=values["p90_us"] / 1e3, p99_ms=values["p99_us"] / 1e3,
        max_ms=values["max_us"] / 1e3, non2xx=values["non2xx"],
        socket_errors=values["connect"] + values["read"] + values["write"] + values["timeout"],
    )


def measure_at_rate(url: str, tokens_path: Path, *, connections: int, seconds: float,
                    target: float) -> tuple[WrkResult, float]:
    """Latency at about ``target`` requests/s, by pausing each connection between requests.

    A connection sends one request per (pause + response time + reconnect), so the mean
    pause for the target is connections / target minus that overhead. Short probes measure
    the overhead, which grows with the load, and correct the pause until the probe is within
    5 % of the target (at most PROBES times). Returns the run and the mean pause it used.
    """
    cycle_ms = connections * 1000 / target
    pause_ms = cycle_ms
    for _ in range(PROBES):
        probe = run_wrk(url, tokens_path, connections=connections, seconds=PROBE_SECONDS,
                        pause_ms=pause_ms)
        if abs(probe.rate - target) <= 0.05 * target:
            break
        overhead_ms = max(0.0, connections * 1000 / probe.rate - pause_ms)
        # At least 1 ms: no pause at all would be flat out, not paced.
        pause_ms = max(1.0, cycle_ms - overhead_ms)
    return run_wrk(url, tokens_path, connections=connections, seconds=seconds,
                   pause_ms=pause_ms), pause_ms


def cpu_busy_percent(seconds: float = 1.0) -> float | None:
    """How busy all cores are over ``seconds`` (Linux /proc/stat), in percent."""

    def sample() -> tuple[int, int]:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 100 * (1 - (idle1 - idle0) / max(1, total1 - total0))


# --------------------------------------------------------------------------- report


def print_report(results: dict[str, dict[str, WrkResult]], endpoints: dict[str, str], *,
                 target: float) -> None:
    header = (f"{'endpoint':<28}{'max req/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
              f"{f'@~{target:g} req/s':>15}{'p50 ms':>8}{'p99 ms':>8}{'errors':>8}")
    print()
    print(header)
    print("-" * len(header))
    for name, runs in results.items():
        top, paced = runs["max"], runs["rate"]
        errors = top.non2xx + top.socket_errors + paced.non2xx + paced.socket_errors
        label = f"{name} {endpoints[name]}"
        print(f"{label:<28}{top.rate:>10,.0f}{top.p50_ms:>8.1f}{top.p99_ms:>8.1f}"
              f"{paced.rate:>15,.0f}{paced.p50_ms:>8.1f}{paced.p99_ms:>8.1f}{errors:>8}")
    print("(errors: non-2xx answers + socket errors, both runs)")
    drf, bare = results["DRF"], results["bare"]
    ratio = drf["max"].rate / bare["max"].rate
    p99 = drf["rate"].p99_ms
    print()
    print(f"goal: DRF throughput >= {GOAL_RATIO} x bare: {ratio:.2f} x "
          f"-> {'met' if ratio >= GOAL_RATIO else 'MISSED'}")
    print(f"goal: DRF p99 < {GOAL_P99_MS:g} ms at ~{target:g} req/s: {p99:.1f} ms "
          f"(at {drf['rate'].rate:,.0f} req/s) -> {'met' if p99 < GOAL_P99_MS else 'MISSED'}")
    for name, runs in results.items():
        if abs(runs["rate"].rate - target) > 0.1 * target:
            print(f"note: {name} ran at {runs['rate'].rate:,.0f} req/s in (b), more than 10 % "
                  f"off the target (its max is {runs['max'].rate:,.0f} req/s)")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--positions", type=int, default=10, help="open positions per member")
    parser.add_argument("--duration", type=float, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=300, help="target requests/s for (b)")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (Debian/Ubuntu), then run again.",
              file=sys.stderr)
        sys.exit(1)
    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so gunicorn is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    reset_tables()
    t = time.perf_counter()
    tokens = seed(members=args.members, positions=args.positions, rng=random.Random(42))
    connection.close()  # the bench process is done with the database
    print(f"seeded {args.members} members x {args.positions} open positions and "
          f"{len(tokens)} access tokens in {time.perf_counter() - t:.1f} s")

    endpoints = {"DRF": DRF_PATH, "bare": BARE_PATH}
    with tempfile.TemporaryDirectory(prefix="api_bench-") as tmp:
        tokens_path = Path(tmp) / "tokens.txt"
        tokens_path.write_text("\n".join(tokens) + "\n")
        log_path = Path(tmp) / "gunicorn.log"
        busy_before = cpu_busy_percent()
        sock = listening_socket()
        base = "http://{}:{}".format(*sock.getsockname())
        server = start_gunicorn(sock, log_path)
        sock.close()  # gunicorn holds its own copy
        try:
            wait_until_answering(base, server, log_path)
            print(f"gunicorn {base}: config.wsgi with bench.settings (DEBUG off), {WORKERS} "
                  "sync workers, no access log, TCP_DEFER_ACCEPT listener")
            print(f"machine: {os.cpu_count()} cores shared by the {WORKERS} workers, "
                  "PostgreSQL and wrk (2 threads): absolute figures are a lower bound for a "
                  "dedicated web host; the DRF/bare ratio is the comparable one")
            if busy_before is not None:
                print(f"CPU busy before the run (other processes): {busy_before:.0f} %"
                      + ("  <- the machine is not idle: expect lower, noisier figures"
                         if busy_before > 15 else ""))
            check_same_answer(base, tokens[0], args.positions)
            for path in endpoints.values():  # first requests: imports, connections, caches
                run_wrk(base + path, tokens_path, connections=args.connections,
                        seconds=WARMUP_SECONDS)

            results: dict[str, dict[str, WrkResult]] = {name: {} for name in endpoints}
            print(f"(a) max throughput: {args.connections} connections flat out, "
                  f"{args.duration:g} s per endpoint")
            for name, path in endpoints.items():
                top = run_wrk(base + path, tokens_path, connections=args.connections,
                              seconds=args.duration)
                results[name]["max"] = top
                print(f"    {name:<4} {path}: {top.rate:,.0f} req/s, p50 {top.p50_ms:.1f} ms, "
                      f"p99 {top.p99_ms:.1f} ms ({top.requests:,} requests, "
                      f"{top.non2xx} non-2xx, {top.socket_errors} socket errors)", flush=True)

            print(f"(b) latency at ~{args.rate:g} req/s. wrk has no constant-rate mode: each "
                  f"of the {args.connections} connections waits a random pause (uniform, "
                  f"mean set by up to {PROBES} probes of {PROBE_SECONDS} s) before each request; "
                  "the achieved rate is reported. Closed loop: a slow answer also delays "
                  "that connection's next request, so p99 reads lower than from an open-loop "
                  "generator (wrk2 -R)")
            for name, path in endpoints.items():
                paced, pause_ms = measure_at_rate(base + path, tokens_path,
                                                  connections=args.connections,
                                                  seconds=args.duration, target=args.rate)
                results[name]["rate"] = paced
                print(f"    {name:<4} {path}: {paced.rate:,.0f} req/s (mean pause "
                      f"{pause_ms:.1f} ms), p50 {paced.p50_ms:.1f} ms, "
                      f"p99 {paced.p99_ms:.1f} ms ({paced.non2xx} non-2xx, "
                      f"{paced.socket_errors} socket errors)", flush=True)
        finally:
            stop(server)
        busy_after = cpu_busy_percent()
        if busy_after is not None:
            print(f"CPU busy after the run (gunicorn stopped): {busy_after:.0f} %")
        print_report(results, endpoints, target=args.rate)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
