"""Prometheus metrics of the mark-to-market pass (``risk.marking``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from risk.mtm import ESTIMATE_ERROR_BUCKETS

estimate_error_percent = Histogram(
    "guard_estimate_error_percent",
    "A mark-to-market estimate's equity against the next real read's, percent of the read "
    "equity, signed (positive: the estimate hid a loss).",
    buckets=ESTIMATE_ERROR_BUCKETS,
)
estimates_total = Counter(
    "guard_estimates", "Accounts estimated by the mark-to-market pass, by standing.",
    ["standing"])
priority_reads_total = Counter(
    "guard_priority_reads", "Priority reads queued by the mark-to-market pass.")
