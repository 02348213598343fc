"""The Celery app. Workers also serve their metrics for a Prometheus scrape.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the Procfile sets it), every process on the machine
(web, worker children) writes its metrics there; the web's ``/metrics`` and the worker's own
port (``CELERY_METRICS_PORT``, default 9808) both serve the sum.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, before_task_publish, task_prerun, worker_ready
from prometheus_client import Histogram

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

queue_latency = Histogram(
    "celery_task_queue_latency_seconds",
    "Seconds from a task's publication (or its ETA, if later) to a worker starting it.",
    ["queue"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


@before_task_publish.connect
def _stamp_published_at(headers: dict[str, Any] | None = None, **_: object) -> None:
    if headers is not None:  # read back by the worker as task.request.published_at
        headers.setdefault("published_at", time.time())


@task_prerun.connect
def _observe_queue_latency(task: Any = None, **_: object) -> None:
    request = getattr(task, "request", None)
    published = getattr(request, "published_at", None)
    if not isinstance(published, int | float):
        return
    eta = getattr(request, "eta", None)  # a countdown is a wait by design, not latency
    if isinstance(eta, str):
        published = max(published, datetime.fromisoformat(eta).timestamp())
    queue = (getattr(request, "delivery_info", None) or {}).get("routing_key") or "unknown"
    queue_latency.labels(queue=queue).observe(max(time.time() - published, 0.0))


@after_setup_logger.connect
def _quiet_per_task_lines(**_: object) -> None:
    # The dispatcher runs every second: one "received" and one "succeeded" line per tick
    # would bury everything else. Tasks log their own one-line summaries instead.
    if os.environ.get("CELERY_TASK_LINES", "") != "1":
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)


@worker_ready.connect
def _serve_worker_metrics(**_: object) -> None:
    port = int(os.environ.get("CELERY_METRICS_PORT", "9808"))
    if port <= 0:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    try:
        if registry is None:
            start_http_server(port, addr="127.0.0.1")
        else:
            start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:  # a second worker on this machine: the first one serves the sum
        logger.warning("worker metrics port %s not served: %s", port, exc)
    else:
        logger.info("worker metrics on http://127.0.0.1:%s/metrics", port)
