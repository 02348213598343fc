"""PostgreSQL stopped for 30 s under a real worker, dispatcher and beat: every process stays
up, and syncs resume by themselves once the database is back.

A private PostgreSQL cluster (``pg_createcluster`` on a spare port, trust auth), migrated
from scratch, so the CI cluster is never stopped; a private Redis as the broker; the
simulated terminal behind its bridge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from tests.conftest import ROOT, SIM_SERVER
from tests.faults.conftest import stop_all
from tests.faults.test_redis_restart import spare_port, start_redis, wait_for

OUTAGE_SECONDS = 30


def _run(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def private_postgres():
    if shutil.which("pg_createcluster") is None or os.geteuid() != 0:
        message = "needs Debian's postgresql-common and root to create a private cluster"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    port = spare_port()
    name = f"faults{uuid.uuid4().hex[:6]}"
    _run("pg_createcluster", version, name, "-p", str(port), "--", "--auth=trust")
    try:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start")
        url = f"postgres://postgres@127.0.0.1:{port}/postgres"
        yield version, name, url
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count_ok_syncs(url: str, since_epoch: float) -> int:
    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://"),
                             connect_timeout=2) as conn:
            return conn.execute(
                "SELECT count(*) FROM positions_synclog WHERE result = 'ok' "
                "AND started_at > to_timestamp(%s)", (since_epoch,)).fetchone()[0]
    except psycopg.OperationalError:
        return 0


def test_a_postgres_outage_is_survived_by_every_process(private_postgres, sim_bridge,
                                                        settings, tmp_path):
    version, name, url = private_postgres
    redis_port = spare_port()
    redis = start_redis(redis_port)
    env = {**os.environ, "DATABASE_URL": url,
           "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
           "MT5_BRIDGE_URL": sim_bridge.url, "MT5_BRIDGE_TOKEN": settings.MT5_BRIDGE_TOKEN,
           "CELERY_METRICS_PORT": "0", "VAR_DIR": str(tmp_path),
           "SYNC_DEFAULT_CADENCE_SECONDS": "2", "MT5_VERIFY_ON_LINK": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    sim_bridge.add_account(7601)
    subprocess.run([*manage, "shell", "-c", (
        "from accounts.models import User; from accounts.services import "
        "trading_account_create as c; u = User.objects.create_user(username='m', "
        "password='pw-m-12345'); c(user=u, broker='mt5', broker_name='Sim', "
        f"server='{SIM_SERVER}', login='7601', password='pw-7601')")],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "worker": ["worker", "-Q", "sync,guards,close", "-c", "2", "--without-mingle",
                   "--without-gossip", "-l", "warning"],
        "dispatcher": ["worker", "-Q", "dispatch", "--pool", "solo", "-n", "dispatch@%h",
                       "--without-mingle", "--without-gossip", "-l", "warning"],
        "beat": ["beat", "-l", "warning", "--schedule", str(tmp_path / "beat.db")],
    }
    processes = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=(logs / f"{name_}.log").open("w"),
        start_new_session=True) for name_, args in commands.items()]
    try:
        print(f"\nlogs: {logs}")
        wait_for(lambda: _count_ok_syncs(url, 0) > 0, 60)
        print("synced before the outage")
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "stop", "-m",
             "fast")
        time.sleep(OUTAGE_SECONDS)
        assert [p.poll() for p in processes] == [None, None, None], \
            "a process died with the database"
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start")
        back = time.time()
        wait_for(lambda: _count_ok_syncs(url, back) > 0, 90)
        recovered = time.time() - back
        print(f"\nPostgreSQL back: first sync after {recovered:.1f} s")
        assert [p.poll() for p in processes] == [None, None, None]
    finally:
        stop_all(processes, redis)
