"""The fault suite: each scenario injects one fault into real processes (PostgreSQL, Redis,
Celery workers and beat, the simulated terminal behind its bridge) and checks the
invariants after it: no position lost on a failed read, no close sent twice, nothing left
in a non-final state after recovery, /healthz 503 during the fault and 200 after.
Run it alone with ``scripts/test -m faults``."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import redis_broker  # noqa: F401 - the fixture, for this folder


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def assert_invariants(*, sim_bridge, logins: list[int], positions_before: int) -> None:
    """What must hold after every scenario, once it has recovered: no position row lost
    (a failed read deletes nothing), no position closed twice at the broker, and no
    liquidation episode or close request left in a non-final state."""
    from brokers import mt5_api
    from guards.models import CloseRequest, LiquidationEpisode
    from positions.models import Position

    assert Position.objects.count() >= positions_before, "a position row was lost"
    for login in logins:
        outs: dict[int, int] = {}
        for deal in sim_bridge.admin_deals(login):
            if deal.entry == mt5_api.DEAL_ENTRY_OUT and deal.reason == mt5_api.DEAL_REASON_EXPERT:
                outs[deal.position_id] = outs.get(deal.position_id, 0) + 1
        assert all(n == 1 for n in outs.values()), f"closed twice: {outs}"
    assert not LiquidationEpisode.objects.filter(status__in=("warning", "liquidating")).exists()
    assert not CloseRequest.objects.filter(status__in=("pending", "sending")).exists()


def stop_all(processes: list, redis) -> None:
    """Stop the scenario's Celery processes (TERM to each session, KILL after 30 s) and its
    private redis-server."""
    import os
    import signal
    import subprocess

    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    redis.kill()
    redis.wait(timeout=10)
