"""A worker SIGKILLed right after its close went out: after a restart the account ends flat
with exactly one close per position (real Celery workers on Redis and PostgreSQL, the
simulated terminal behind a real bridge).

The order is executed at the broker, then the worker blocks reading the deal history
(an injected 8 s delay on ``history_deals_get``) and is killed there: its close request
stays "sending" and its message unacknowledged. The sweeper (``guards_sweep``, sent here
every 2 s as beat would every 5 s) resumes it after its lease, looks the position up, and
finds it closed instead of sending again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection
from django.utils import timezone

from brokers import mt5_api
from guards.models import CloseAttempt, CloseRequest, LiquidationEpisode
from pipeline.services import accounts_sync
from tests.e2e.conftest import REDIS_BROKER, ROOT
from tests.e2e.test_celery_worker import wait_for
from tests.faults.conftest import assert_invariants

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def start_worker(sim_bridge, settings, tmp_path) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS_BROKER,
        "MT5_BRIDGE_URL": sim_bridge.url,
        "MT5_BRIDGE_TOKEN": settings.MT5_BRIDGE_TOKEN,
        "MT5_CONNECTION_TIMEOUT": "20",
        "CELERY_METRICS_PORT": "0",
        "VAR_DIR": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # its own session, so the whole worker (main process and children) can be killed
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "close,guards",
         "-c", "1", "--without-heartbeat", "--without-mingle", "--without-gossip",
         "-l", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def test_a_worker_killed_after_sending_ends_flat_with_one_close_per_position(
        redis_broker, sim_bridge, linked_account, settings, tmp_path):
    account = linked_account(7301)
    tickets = [int(sim_bridge.sim("sim_open", 7301, "EURUSD", "sell", "0.30", magic=1))
               for _ in range(2)]
    accounts_sync(account_ids=[account.pk])
    now = timezone.now()
    episode = LiquidationEpisode.objects.create(
        account=account, status=LiquidationEpisode.Status.LIQUIDATING,
        reason="drawdown_critical", started_at=now, recheck_at=now)
    requests = [CloseRequest.objects.create(
        account=account, ticket=t, symbol="EURUSD", key=f"episode:{episode.pk}",
        episode=episode, reason=CloseRequest.Reason.DRAWDOWN, next_attempt_at=now)
        for t in tickets]
    # after the first close is executed, its worker hangs reading the history
    sim_bridge.sim("sim_inject_fault", "delay", method="history_deals_get", count=1,
                   delay=8.0)

    worker = start_worker(sim_bridge, settings, tmp_path)
    try:
        for request in requests:
            redis_broker.send_task("guards.tasks.close_request_execute", args=[request.pk],
                                   queue="close")
        wait_for(lambda: len(sim_bridge.sim("sim_positions", 7301)) == 1, timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait(timeout=10)
        first = CloseRequest.objects.get(status=CloseRequest.Status.SENDING)

        worker = start_worker(sim_bridge, settings, tmp_path)

        def flat_and_done() -> bool:
            redis_broker.send_task("guards.tasks.guards_sweep", queue="guards")
            time.sleep(2)
            episode.refresh_from_db()
            return episode.status == LiquidationEpisode.Status.DONE

        wait_for(flat_and_done, timeout=120)
        recovered_in = time.monotonic() - killed_at
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)

    print(f"\nrecovered {recovered_in:.1f} s after the SIGKILL")
    assert recovered_in < 60
    assert sim_bridge.sim("sim_positions", 7301) == ()
    deals = sim_bridge.admin_deals(7301)
    for ticket in tickets:
        outs = [d for d in deals if d.position_id == ticket
                and d.entry == mt5_api.DEAL_ENTRY_OUT]
        assert len(outs) == 1, f"#{ticket} closed {len(outs)} times"
    assert CloseAttempt.objects.filter(close_request=first,
                                       comment="found closed on look-up").exists()
    assert set(CloseRequest.objects.filter(episode=episode)
               .values_list("status", flat=True)) == {"done"}
    assert_invariants(sim_bridge=sim_bridge, logins=[7301], positions_before=2)
