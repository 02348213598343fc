"""Prometheus metrics of reconciliation."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from reconciliation.matching import Kind

divergences_total = Counter(
    "reconciliation_divergences",
    "Divergences that appeared (or one-off events that occurred), by kind.", ["reason"])
latency = Histogram(
    "reconciliation_latency_seconds", "Seconds to reconcile one batch of synced accounts.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

for _kind in Kind:
    divergences_total.labels(reason=_kind.value)
