"""Prometheus metrics of the alert outbox. Each alert is counted once, by the conditional
update that recorded its outcome."""

from __future__ import annotations

from prometheus_client import Counter

from notifications.models import Alert

alerts_sent_total = Counter("alerts_sent", "Alerts Telegram accepted.")
alerts_failed_total = Counter(
    "alerts_failed", "Alerts not delivered (failed or skipped), by reason.", ["reason"])

for _reason in Alert.FailureReason.values:
    alerts_failed_total.labels(reason=_reason)
