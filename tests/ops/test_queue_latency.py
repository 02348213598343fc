"""Queue latency: publication is stamped in the message headers, and a worker starting the
task observes the wait (from publication, or from the ETA of a countdown) by queue."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

from prometheus_client import REGISTRY

from config import celery as celery_config


def _count(queue: str) -> tuple[float, float]:
    """(sum of the waits, observations) on ``queue``, as /metrics would read them."""
    name = "celery_task_queue_latency_seconds"
    return tuple(REGISTRY.get_sample_value(f"{name}_{kind}", {"queue": queue}) or 0.0
                 for kind in ("sum", "count"))


def _task(**request: object) -> SimpleNamespace:
    return SimpleNamespace(request=SimpleNamespace(**request))


def test_the_wait_from_publication_is_observed_by_queue():
    headers: dict[str, object] = {}
    celery_config._stamp_published_at(headers=headers)
    assert abs(headers["published_at"] - time.time()) < 1
    before_sum, before_n = _count("latency-test")
    celery_config._observe_queue_latency(task=_task(
        published_at=time.time() - 2.0, eta=None,
        delivery_info={"routing_key": "latency-test"}))
    after_sum, after_n = _count("latency-test")
    assert after_n == before_n + 1
    assert 2.0 <= after_sum - before_sum < 3.0


def test_a_countdown_is_not_latency():
    before_sum, before_n = _count("latency-eta")
    eta = datetime.fromtimestamp(time.time() - 0.5, tz=UTC).isoformat()
    celery_config._observe_queue_latency(task=_task(
        published_at=time.time() - 60, eta=eta, delivery_info={"routing_key": "latency-eta"}))
    after_sum, after_n = _count("latency-eta")
    assert after_n == before_n + 1 and 0.5 <= after_sum - before_sum < 1.5


def test_a_message_without_the_stamp_is_skipped():
    before = _count("latency-none")
    celery_config._observe_queue_latency(task=_task(delivery_info={"routing_key": "latency-none"}))
    assert _count("latency-none") == before
