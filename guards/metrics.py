"""Prometheus metrics of the guards."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

drawdown_guard_triggers_total = Counter(
    "drawdown_guard_triggers", "Liquidation episodes opened (critical drawdown or a rule).")
positions_autoclosed_total = Counter(
    "positions_autoclosed", "Positions closed through close requests, by reason.", ["reason"])
close_attempts_total = Counter(
    "close_attempts", "Orders sent for close requests, by outcome (done / partial / retry / "
    "ambiguous / failed).", ["outcome"])
account_drawdown = Histogram(
    "account_drawdown_percent", "Drawdown of each account at each guard check, % of peak.",
    buckets=(1, 2, 5, 10, 15, 20, 30, 50, 100))

for _reason in ("drawdown", "period", "market", "manual"):
    positions_autoclosed_total.labels(reason=_reason)
for _outcome in ("done", "partial", "retry", "ambiguous", "failed"):
    close_attempts_total.labels(outcome=_outcome)
