"""Gauges Prometheus reads from the database at scrape time (``GET /metrics``).

Counters and histograms of events live beside their code (``*/metrics.py``) and are summed
across processes. What the alert rules need besides them is *state*: how many accounts are
stale, how old the dispatcher's heartbeat is, how long the oldest close request has been
open. Each scrape reads it afresh with a fixed number of small queries (8), so a gauge can
never be a dead process's leftover. Ages are seconds; a missing age (nothing open) is not
exported, so ``absent()`` and ``or`` work in rules.

``ops/prometheus/rules.yml`` alerts on these; ``ops/grafana/backoffice.json`` draws them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db import DatabaseError
from django.db.models import Count, Max, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from accounts.models import TradingAccount
from guards.models import AccountGuardState, CloseRequest, LiquidationEpisode
from notifications.models import Alert
from positions.models import DispatcherHeartbeat
from reconciliation.models import KIND_CHOICES, OpenDivergence

RUNNING_EPISODE = (LiquidationEpisode.Status.WARNING, LiquidationEpisode.Status.LIQUIDATING)
OPEN_CLOSE = (CloseRequest.Status.PENDING, CloseRequest.Status.SENDING)
UNDELIVERED = (Alert.Status.PENDING, Alert.Status.SENDING)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max((now - then).total_seconds(), 0.0)


def _gauge(name: str, doc: str, value: float | None) -> Iterator[GaugeMetricFamily]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, counts: dict[str, int],
              values: list[str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value in values:  # every known value, 0 included, so ratios and rules see it
        family.add_metric([value], counts.get(value, 0))
    return family


class BackofficeCollector(Collector):
    """The product's state gauges (names start ``backoffice_``)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        try:
            yield from self._accounts(now)
            yield from self._guards(now)
            yield from self._outbox(now)
        except DatabaseError:  # /metrics must still answer; the rules see the gauges vanish
            yield GaugeMetricFamily("backoffice_database_up",
                                    "1 if the last scrape could read the database.", value=0)
            return
        yield GaugeMetricFamily("backoffice_database_up",
                                "1 if the last scrape could read the database.", value=1)

    def _accounts(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        active = TradingAccount.objects.filter(is_active=True)
        by_status = dict(active.values_list("sync_status").annotate(n=Count("id"))
                         .order_by().values_list("sync_status", "n"))
        yield _labelled("backoffice_accounts", "Linked accounts by sync status.",
                        "sync_status", by_status, list(TradingAccount.SyncStatus.values))
        newest = active.aggregate(m=Max("last_synced_at"))["m"]
        yield from _gauge("backoffice_last_sync_age_seconds",
                          "Seconds since the newest successful sync of any account.",
                          _age(now, newest))
        beat = DispatcherHeartbeat.objects.filter(name="sync").values_list(
            "last_tick_at", flat=True).first()
        yield from _gauge("backoffice_dispatcher_heartbeat_age_seconds",
                          "Seconds since the sync dispatcher's last tick (beat, every 1 s).",
                          _age(now, beat))
        divergences = dict(OpenDivergence.objects.values_list("kind").annotate(n=Count("id"))
                           .order_by().values_list("kind", "n"))
        yield _labelled("backoffice_open_divergences", "Open divergences by kind.", "kind",
                        divergences, [k for k, _ in KIND_CHOICES])

    def _guards(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        levels = dict(AccountGuardState.objects.filter(account__is_active=True)
                      .values_list("level").annotate(n=Count("id"))
                      .order_by().values_list("level", "n"))
        yield _labelled("backoffice_guard_accounts", "Linked accounts by guard level.",
                        "level", levels, ["ok", "warning", "critical"])
        closes = {row["status"]: row for row in CloseRequest.objects
                  .values("status").annotate(n=Count("id"), oldest=Min("created_at"))
                  .order_by()}
        yield _labelled("backoffice_close_requests", "Close requests by status (all time).",
                        "status", {s: r["n"] for s, r in closes.items()},
                        list(CloseRequest.Status.values))
        open_since = [closes[s]["oldest"] for s in OPEN_CLOSE if s in closes]
        yield from _gauge("backoffice_close_request_oldest_open_age_seconds",
                          "Age of the oldest close request still pending or sending.",
                          _age(now, min(open_since)) if open_since else None)
        episodes = LiquidationEpisode.objects.filter(status__in=RUNNING_EPISODE).aggregate(
            n=Count("id"), oldest=Min("started_at"))
        yield GaugeMetricFamily("backoffice_liquidation_episodes_running",
                                "Liquidation episodes in countdown or closing.",
                                value=episodes["n"])
        yield from _gauge("backoffice_liquidation_episode_oldest_age_seconds",
                          "Age of the oldest running liquidation episode.",
                          _age(now, episodes["oldest"]))

    def _outbox(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        # due_at <= now: the rows a notify worker should have taken by now (a row waiting
        # out a retry_after or a backoff is not late)
        late = Alert.objects.filter(status__in=UNDELIVERED, due_at__lte=now).aggregate(
            n=Count("id"), oldest=Min("due_at"))
        yield GaugeMetricFamily("backoffice_alerts_overdue",
                                "Telegram alerts due and not delivered yet.", value=late["n"])
        yield from _gauge("backoffice_alerts_oldest_overdue_seconds",
                          "How long the oldest undelivered alert has been due.",
                          _age(now, late["oldest"]))
