"""Prometheus metrics of the guards."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

drawdown_guard_triggers_total = Counter(
    "drawdown_guard_triggers", "Liquidation episodes opened (critical drawdown or a rule).")
positions_autoclosed_total = Counter(
    "positions_autoclosed", "Positions closed through close requests, by reason.", ["reason"])
account_drawdown = Histogram(
    "account_drawdown_percent", "Drawdown of each account at each guard check, % of peak.",
    buckets=(1, 2, 5, 10, 15, 20, 30, 50, 100))

for _reason in ("drawdown", "period", "market", "manual"):
    positions_autoclosed_total.labels(reason=_reason)
