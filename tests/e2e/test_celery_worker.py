"""A real Celery worker on PostgreSQL and Redis runs the dispatcher and the sync tasks
against the simulated terminal behind a real bridge."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import TradingAccount
from positions.models import Position, SyncLog
from tests.e2e.conftest import REDIS_BROKER, ROOT


@pytest.fixture
def worker(redis_broker, sim_bridge, tmp_path, settings):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS_BROKER,
        "MT5_BRIDGE_URL": sim_bridge.url,
        "MT5_BRIDGE_TOKEN": settings.MT5_BRIDGE_TOKEN,
        "CELERY_METRICS_PORT": "0",
        "VAR_DIR": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "sync", "-c", "2",
         "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    process.wait(timeout=30)


def wait_for(predicate, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_worker_syncs_and_dispatcher_enqueues(worker, redis_broker, sim_bridge, linked_account):
    account = linked_account(7201)
    ticket = int(sim_bridge.sim("sim_open", 7201, "EURUSD", "buy", "0.10", magic=1))
    # a duplicated message: both deliveries run, the lease lets them write one at a time
    for _ in range(2):
        redis_broker.send_task("pipeline.tasks.accounts_sync", args=[[account.pk]],
                               queue="sync")

    wait_for(lambda: SyncLog.objects.filter(account=account, result="ok").exists())
    account.refresh_from_db()
    assert account.sync_status == TradingAccount.SyncStatus.HEALTHY
    assert Position.objects.get(account=account).ticket == ticket

    # the dispatcher, run by the worker, enqueues the due account through Redis
    wait_for(lambda: TradingAccount.objects.filter(pk=account.pk, sync_lease_token=None)
             .exists())
    before = SyncLog.objects.filter(account=account).count()
    TradingAccount.objects.filter(pk=account.pk).update(next_sync_at=timezone.now())
    sim_bridge.sim("sim_advance", 1)
    redis_broker.send_task("pipeline.tasks.sync_dispatch", queue="sync")

    wait_for(lambda: SyncLog.objects.filter(account=account).count() > before)
    assert SyncLog.objects.filter(account=account, result="failed").count() == 0
