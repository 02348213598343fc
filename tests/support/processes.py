"""The real processes a test or a bench runs against, started one way: a simulated MT5
terminal behind a real bridge process, and a scratch PostgreSQL database.

Used by tests/conftest.py (the ``sim_bridge`` fixture) and the bench scripts
(bench/sync_bench.py, bench/guard_bench.py, bench/dashboard_bench.py, bench/api_bench.py,
bench/position_size_bench.py). Importable from the repository root, which pytest and
every bench put on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent.parent
# what brokers/bridge/server.py prints on stdout once it accepts connections
LISTENING = re.compile(r"listening on (https?://\S+)")


class BridgeDidNotStart(RuntimeError):
    """The bridge process printed something other than its ``listening on`` line (or
    nothing) and was killed; the message carries what it printed."""


def bridge_start(*args: str, token: str | None = None,
                 stderr: IO[str] | int = subprocess.DEVNULL,
                 new_session: bool = False) -> tuple[subprocess.Popen, str]:
    """Start ``python -m brokers.bridge.server --sim --manual-clock --port 0 --members 0
    *args`` from the repository root and wait for its first line.

    ``--manual-clock``: prices move only when the caller advances the clock; ``--port 0``:
    a free port; ``--members 0``: no demo members (``args`` add accounts, e.g.
    ``--bench-accounts 500``, or set ``--login-ms``). ``token`` becomes the process's
    ``MT5_BRIDGE_TOKEN`` (default: the environment's). ``new_session``: its own process
    group, so a Ctrl-C of the caller does not reach it.

    Returns ``(process, url)``, ``url`` like ``http://127.0.0.1:41234``; the caller stops
    the process. Raises BridgeDidNotStart when the first line is not ``listening on``.
    """
    env = dict(os.environ)
    if token is not None:
        env["MT5_BRIDGE_TOKEN"] = token
    process = subprocess.Popen(
        [sys.executable, "-m", "brokers.bridge.server", "--sim", "--manual-clock",
         "--port", "0", "--members", "0", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        start_new_session=new_session,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = LISTENING.search(line)
    if not match:
        if new_session:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()
        raise BridgeDidNotStart(f"bridge did not start: {line!r}")
    return process, match.group(1)


def bench_environment(database: str, *, redis_url: str | None = None,
                      settings_module: str = "config.settings") -> None:
    """Environment defaults of a bench script, set before Django is imported: its own
    scratch database ``database`` on 127.0.0.1:5432 (user postgres), Redis ``redis_url``
    if given (else the settings' file cache), fixed throwaway secrets, Celery's in-memory
    broker and ``var/bench``. A variable already set wins, except DJANGO_SETTINGS_MODULE.
    """
    defaults = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        # 32+ bytes: JWTs are signed with it (HS256), PyJWT warns about shorter keys
        "SECRET_KEY": "bench-secret-key-for-hs256-jwt-0123456789",
        "FIELD_ENCRYPTION_KEYS": "Sg9pBSmV3M0kSYV4f2w1xV9Xn3i0hHhM4n7fDqG0aIE=",
        "MT5_BRIDGE_TOKEN": "bench-bridge-token-0123456789",
        "CELERY_BROKER_URL": "memory://",
        "VAR_DIR": str(ROOT / "var" / "bench"),
    }
    if redis_url is not None:
        defaults["REDIS_URL"] = redis_url
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module


def database_ensure(url: str | None = None) -> None:
    """Create the PostgreSQL database ``url`` names (default: ``DATABASE_URL``, e.g.
    ``postgres://postgres@127.0.0.1:5432/bench_sync``) if it is missing, through the
    server's ``postgres`` database. Raises psycopg.OperationalError when the server does
    not answer."""
    import psycopg

    url = url or os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def tables_empty(app_labels: Iterable[str]) -> None:
    """Empty every table of these Django apps (a scratch database only), restarting ids.

    The append-only audit tables refuse TRUNCATE by trigger (e.g. reconciliation migration
    0002): ``session_replication_role = replica`` (superuser, this transaction only) skips
    ordinary triggers, as tests/conftest.py does for the test database. Django must be set
    up.
    """
    from django.apps import apps
    from django.db import connection, transaction

    tables = sorted({
        model._meta.db_table
        for label in app_labels
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    })
    quoted = ", ".join(connection.ops.quote_name(t) for t in tables)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
