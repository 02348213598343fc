"""GET /metrics: django-prometheus's export, plus the database gauges (dashboard.metrics).

With ``PROMETHEUS_MULTIPROC_DIR`` set, the counters and histograms are the sum over every
process on the machine (web and workers), as django-prometheus serves them; the gauges are
read from the database by this request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import prometheus_client
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric

from accounts.metrics import TerminalCollector
from dashboard.metrics import BackofficeCollector

_backoffice = BackofficeCollector()
_terminals = TerminalCollector()


class _ProcessRegistry:
    """This process's own metrics (no multiprocess directory)."""

    def collect(self) -> Iterator[Metric]:
        yield from prometheus_client.REGISTRY.collect()


def metrics(request: HttpRequest) -> HttpResponse:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessRegistry())  # type: ignore[arg-type]
    registry.register(_backoffice)
    registry.register(_terminals)
    return HttpResponse(prometheus_client.generate_latest(registry),
                        content_type=prometheus_client.CONTENT_TYPE_LATEST)
