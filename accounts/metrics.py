"""Prometheus metrics of account linking."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

link_started_total = Counter("accounts_link_started", "Account link attempts started.")
verified_total = Counter("accounts_verified", "Accounts verified against the broker on link.")
link_duration = Histogram(
    "account_link_duration_seconds", "Seconds to link one account, verification included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# --- the fleet of terminals (accounts.terminals) ---
terminal_call_seconds = Histogram(
    "mt5_terminal_call_seconds",
    "Seconds one call sequence (login, reads) held a terminal, by terminal name.",
    ["terminal"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
terminal_failover_total = Counter(
    "mt5_terminal_failover", "Accounts moved to a healthy terminal (or first assigned).")


class TerminalCollector(Collector):
    """``mt5_terminal_up`` (1 healthy, 0 not: disabled, or ``TERMINAL_FAILOVER_FAILURES``
    failed call sequences in a row; label ``terminal``: its name), read from the database
    at each scrape (one query), so a dead worker never leaves a stale value."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from accounts.models import Terminal
        from accounts.terminals import terminal_healthy

        family = GaugeMetricFamily("mt5_terminal_up",
                                   "1 if the terminal is enabled and answering its calls.",
                                   labels=["terminal"])
        try:
            for terminal in Terminal.objects.order_by("name"):
                family.add_metric([terminal.name], 1 if terminal_healthy(terminal) else 0)
        except DatabaseError:  # /metrics still answers; backoffice_database_up says why
            return
        yield family
