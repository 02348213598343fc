"""Prometheus metrics of the sync pipeline (served on /metrics and the worker's port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

position_sync_total = Counter(
    "mt5_position_sync", "Account sync cycles, by result (ok / failed).", ["result"]
)
positions_fetched_total = Counter(
    "positions_fetched", "Positions read, by source (broker / cache).", ["source"]
)
positions_fetch_duration = Histogram(
    "positions_fetch_duration_seconds",
    "Seconds to read one account's state, positions and deals through its gateway.",
    ["result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
sync_dispatched_total = Counter(
    "sync_dispatched", "Accounts enqueued for sync by the dispatcher."
)

# Expose every series from the start (at 0), so dashboards and alerts see them at once.
for _result in ("ok", "failed"):
    position_sync_total.labels(result=_result)
for _source in ("broker", "cache"):
    positions_fetched_total.labels(source=_source)

positions_cache_hit_total = Counter(
    "positions_cache_hit",
    "Position API answers served from the last sync, without asking the broker.",
)

push_rejected_total = Counter(
    "positions_push_rejected",
    "EA pushes stored as rejected because their figures do not add up, by the check failed "
    "(equity_identity, free_margin, margin_level, margin, jump).",
    ["check"],
)
account_identity_residual = Histogram(
    "positions_account_identity_residual",
    "|equity − (balance + credit + Σ position profit and swap)| of each good read, in the "
    "account currency (a tick between the account and the positions reads).",
    buckets=(0.005, 0.01, 0.1, 1, 5, 10, 50, 100, 1000),
)
account_reread_total = Counter(
    "positions_account_reread",
    "Reads taken twice because the account and its positions did not add up (a tick "
    "between the two calls).",
)
