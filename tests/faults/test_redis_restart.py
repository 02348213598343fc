"""Redis restarts under a real worker and beat: the worker stays up, syncs resume, and a
re-check whose message died with Redis runs anyway (the guards' sweeper resumes it).

A private ``redis-server`` on a spare port, without persistence (as the CI one runs), is
killed (SIGKILL) and started again 10 s later on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from guards.models import LiquidationEpisode
from positions.models import SyncLog
from tests.conftest import ROOT
from tests.faults.conftest import assert_invariants, stop_all

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("redis-server did not start")


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def test_a_redis_restart_keeps_the_worker_and_loses_no_recheck(
        sim_bridge, linked_account, settings, tmp_path):
    if not os.path.exists("/usr/bin/redis-server") and not _on_path("redis-server"):
        pytest.fail("needs redis-server") if os.environ.get("CI") == "true" else \
            pytest.skip("needs redis-server on PATH")
    port = spare_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis = start_redis(port)
    account = linked_account(7401)
    sim_bridge.sim("sim_open", 7401, "EURUSD", "buy", "0.10", magic=1)
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "CELERY_BROKER_URL": broker, "MT5_BRIDGE_URL": sim_bridge.url,
           "MT5_BRIDGE_TOKEN": settings.MT5_BRIDGE_TOKEN, "CELERY_METRICS_PORT": "0",
           "VAR_DIR": str(tmp_path), "SYNC_DEFAULT_CADENCE_SECONDS": "2"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for args in (["worker", "-Q", "dispatch,sync,guards,close", "-c", "2",
                      "--without-mingle",
                      "--without-gossip", "-l", "warning"],
                     ["beat", "-l", "warning", "--schedule", str(tmp_path / "beat.db")])]
    worker = processes[0]
    try:
        wait_for(lambda: SyncLog.objects.filter(account=account, result="ok").exists(), 60)
        # a countdown whose re-check is queued in Redis with a countdown, then Redis dies
        now = timezone.now()
        episode = LiquidationEpisode.objects.create(
            account=account, reason="drawdown_critical", started_at=now,
            recheck_at=now + timedelta(seconds=3),
            trigger={"warning_seconds": 3})
        from kombu import Connection

        with Connection(broker) as conn:
            from celery import Celery

            Celery("producer").send_task("pipeline.tasks.liquidation_recheck",
                                         args=[episode.pk], countdown=3, connection=conn,
                                         queue="guards")
        redis.send_signal(signal.SIGKILL)
        redis.wait(timeout=10)
        settings.CELERY_BROKER_URL = broker  # what this process's /healthz looks at
        health = Client()
        time.sleep(5)
        during = health.get("/healthz")
        assert during.status_code == 503 and "broker" in during.json()["failing"]
        time.sleep(5)
        assert worker.poll() is None, "the worker died with Redis"
        redis = start_redis(port)
        restarted = timezone.now()
        clock = time.monotonic()

        # syncs resume through the restarted Redis, and /healthz says so
        wait_for(lambda: SyncLog.objects.filter(account=account, result="ok",
                                                started_at__gt=restarted).exists(), 90)
        synced_after = time.monotonic() - clock
        wait_for(lambda: health.get("/healthz").status_code == 200, 60)
        healthy_after = time.monotonic() - clock
        print(f"\nRedis back: first sync after {synced_after:.1f} s, /healthz 200 after "
              f"{healthy_after:.1f} s")
        # the re-check ran: the account is far from critical, so the episode is cancelled
        wait_for(lambda: LiquidationEpisode.objects.get(pk=episode.pk).status !=
                 LiquidationEpisode.Status.WARNING, 90)
        assert LiquidationEpisode.objects.get(pk=episode.pk).status == "cancelled"
        assert worker.poll() is None
        assert_invariants(sim_bridge=sim_bridge, logins=[7401], positions_before=1)
    finally:
        stop_all(processes, redis)


def _on_path(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None
