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
