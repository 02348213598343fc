"""Prometheus metrics of account linking."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

link_started_total = Counter("accounts_link_started", "Account link attempts started.")
verified_total = Counter("accounts_verified", "Accounts verified against the broker on link.")
link_duration = Histogram(
    "account_link_duration_seconds", "Seconds to link one account, verification included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
