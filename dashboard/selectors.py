"""The risk dashboard on the admin index: "is anything on fire?" in one read.

``risk_dashboard()`` runs a fixed number of queries (9, or 10) whatever the number of accounts,
positions or snapshots: every figure is an aggregate computed by the database, the lists
are sliced there, and the 24-hour equity sparkline is downsampled there
(``dashboard.equity``).
Money stays in its currency: totals are per currency, never converted. Times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.db.models import (
    Count,
    Exists,
    Min,
    Model,
    OuterRef,
    Q,
    Sum,
)
from django.urls import reverse
from django.utils import timezone

from accounts.models import TradingAccount
from dashboard.equity import SPARKLINE_HEIGHT, SPARKLINE_WIDTH, Sparkline, sparklines
from guards.models import (
    AccountGuardState,
    CloseRequest,
    LiquidationEpisode,
    PlatformState,
    PlatformStateChange,
)
from positions.models import Position
from reconciliation.models import OpenDivergence

TOP_DRAWDOWNS = 10
EPISODES_SHOWN = 20
CENT = Decimal("0.01")
RUNNING_EPISODE = (LiquidationEpisode.Status.WARNING, LiquidationEpisode.Status.LIQUIDATING)


def admin_list(model: type[Model], **filters: Any) -> str:
    """The admin changelist of ``model``, filtered (``field__exact=value`` …)."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def admin_change(obj: Any) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


@dataclass(frozen=True, slots=True)
class Tile:
    """One count with its link into the filtered admin list. ``tone``: ok / warn / bad /
    muted (zero)."""

    label: str
    count: int
    url: str
    tone: str


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    currency: str
    accounts: int
    equity: Decimal
    open_pnl: Decimal
    realized_today: Decimal
    sparkline: Sparkline | None
    url: str


@dataclass(frozen=True, slots=True)
class EpisodeRow:
    episode: LiquidationEpisode
    url: str
    account_url: str
    seconds_to_recheck: int  # ≤ 0: the re-check is due or running
    age_seconds: int


@dataclass(frozen=True, slots=True)
class DrawdownRow:
    account: TradingAccount
    url: str
    level: str


@dataclass(frozen=True, slots=True)
class KillSwitch:
    state: str
    label: str
    reason: str
    changed_by: str
    changed_at: datetime | None
    url: str
    history_url: str


@dataclass(frozen=True)
class RiskDashboard:
    now: datetime
    kill_switch: KillSwitch
    accounts_total: int
    guard_levels: list[Tile]
    sync_statuses: list[Tile]
    oldest_sync_age_seconds: int | None
    oldest_sync_url: str
    episodes: list[EpisodeRow]
    episodes_total: int
    episodes_url: str
    closes: list[Tile]
    oldest_open_close_age_seconds: int | None
    divergences: list[Tile]
    divergences_total: int
    divergences_url: str
    currencies: list[CurrencyTotals]
    day_start: datetime
    top_drawdowns: list[DrawdownRow]
    sparkline_since: datetime | None
    sparkline_bucket_seconds: int
    sparkline_box: tuple[int, int] = field(default=(SPARKLINE_WIDTH, SPARKLINE_HEIGHT))


def _tone(count: int, tone: str) -> str:
    return tone if count else "muted"


def _kill_switch() -> KillSwitch:
    row = PlatformState.objects.select_related("changed_by").filter(pk=1).first()
    url = admin_list(PlatformState)
    history = admin_list(PlatformStateChange)
    if row is None:  # never set: the default state, nobody changed it
        return KillSwitch(state=PlatformState.State.ACTIVE,
                          label=PlatformState.State.ACTIVE.label, reason="", changed_by="",
                          changed_at=None, url=url, history_url=history)
    return KillSwitch(state=row.state, label=row.get_state_display(), reason=row.reason,
                      changed_by=row.changed_by.get_username() if row.changed_by else "",
                      changed_at=row.changed_at, url=url, history_url=history)


def _account_counts() -> dict[str, Any]:
    """Guard levels, sync statuses and the oldest sync of the linked accounts: one query.

    "liquidating" is an account whose episode is closing positions; it is counted there
    and not again under its level, so the four levels add up to the accounts.
    """
    episodes = LiquidationEpisode.objects.filter(account=OuterRef("pk"))
    liquidating = Exists(episodes.filter(status=LiquidationEpisode.Status.LIQUIDATING))
    running = Exists(episodes.filter(status__in=RUNNING_EPISODE))
    statuses = TradingAccount.SyncStatus
    return TradingAccount.objects.filter(is_active=True).aggregate(
        total=Count("id"),
        warning=Count("id", filter=Q(~liquidating, guard_state__level="warning")),
        critical=Count("id", filter=Q(~liquidating, guard_state__level="critical")),
        liquidating=Count("id", filter=liquidating),
        episodes=Count("id", filter=running),
        **{s.value: Count("id", filter=Q(sync_status=s.value)) for s in statuses},
        oldest_sync=Min("last_synced_at"),
    )


def _guard_tiles(counts: dict[str, Any]) -> list[Tile]:
    ok = counts["total"] - counts["warning"] - counts["critical"] - counts["liquidating"]
    return [
        Tile("ok", ok, admin_list(AccountGuardState, level__exact="ok"), "ok"),
        Tile("warning", counts["warning"],
             admin_list(AccountGuardState, level__exact="warning"),
             _tone(counts["warning"], "warn")),
        Tile("critical", counts["critical"],
             admin_list(AccountGuardState, level__exact="critical"),
             _tone(counts["critical"], "bad")),
        Tile("liquidating", counts["liquidating"],
             admin_list(LiquidationEpisode, status__exact="liquidating"),
             _tone(counts["liquidating"], "bad")),
    ]


def _sync_tiles(counts: dict[str, Any]) -> list[Tile]:
    tones = {"healthy": "ok", "stale": "warn", "error": "bad", "pending": "warn"}
    return [Tile(status, counts[status],
                 admin_list(TradingAccount, sync_status__exact=status),
                 "ok" if status == "healthy" else _tone(counts[status], tones[status]))
            for status in ("healthy", "stale", "error", "pending")]


def _episodes(now: datetime) -> list[EpisodeRow]:
    rows = (LiquidationEpisode.objects
            .filter(status__in=RUNNING_EPISODE)
            .select_related("account", "account__user")
            .order_by("started_at")[:EPISODES_SHOWN])
    return [EpisodeRow(episode=e, url=admin_change(e), account_url=admin_change(e.account),
                       seconds_to_recheck=math.ceil((e.recheck_at - now).total_seconds()),
                       age_seconds=int((now - e.started_at).total_seconds()))
            for e in rows]


def _closes(now: datetime) -> tuple[list[Tile], int | None]:
    """Close requests not done: pending and sending (with the oldest one's age) and the
    failed ones (final: a person must look)."""
    statuses = CloseRequest.Status
    rows: dict[str, Mapping[str, Any]] = {row["status"]: row for row in CloseRequest.objects
            .filter(status__in=(statuses.PENDING, statuses.SENDING, statuses.FAILED))
            .values("status").annotate(n=Count("id"), oldest=Min("created_at")).order_by()}
    tiles = [Tile(status.value, rows.get(status, {}).get("n", 0),
                  admin_list(CloseRequest, status__exact=status.value),
                  _tone(rows.get(status, {}).get("n", 0),
                        "bad" if status == statuses.FAILED else "warn"))
             for status in (statuses.PENDING, statuses.SENDING, statuses.FAILED)]
    open_since = [rows[s]["oldest"] for s in (statuses.PENDING, statuses.SENDING) if s in rows]
    oldest = int((now - min(open_since)).total_seconds()) if open_since else None
    return tiles, oldest


def _divergences() -> list[Tile]:
    rows = (OpenDivergence.objects.values("kind").annotate(n=Count("id"))
            .order_by("-n", "kind"))
    return [Tile(row["kind"].replace("_", " "), row["n"],
                 admin_list(OpenDivergence, kind__exact=row["kind"]), "warn")
            for row in rows]


def _money(value: Any) -> Decimal:
    """A database sum (Decimal on PostgreSQL, float or int on SQLite) as cents."""
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(CENT)


def _currency_totals(day_start: datetime) -> tuple[dict[str, Mapping[str, Any]], dict[str, Any]]:
    live: dict[str, Mapping[str, Any]] = {row["currency"]: row for row in TradingAccount.objects
            .filter(is_active=True, equity__isnull=False).exclude(currency="")
            .values("currency")
            .annotate(n=Count("id"), equity=Sum("equity"), open_pnl=Sum("profit"))
            .order_by("currency")}
    realized = dict(Position.objects
                    .filter(status=Position.Status.CLOSED, closed_at__gte=day_start,
                            realized_pnl__isnull=False)
                    .values("account__currency").annotate(total=Sum("realized_pnl"))
                    .order_by().values_list("account__currency", "total"))
    return live, realized


def risk_dashboard(*, now: datetime | None = None) -> RiskDashboard:
    """Everything the admin index shows the owner: 9 queries whatever the size, 10 when a
    sparkline bucket must be computed."""
    now = now or timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = _account_counts()
    oldest_sync = counts["oldest_sync"]
    closes, oldest_close = _closes(now)
    divergences = _divergences()
    live, realized = _currency_totals(day_start)
    lines, since, width = sparklines(now=now)
    currencies = [
        CurrencyTotals(currency=currency, accounts=row["n"], equity=_money(row["equity"]),
                       open_pnl=_money(row["open_pnl"]),
                       realized_today=_money(realized.get(currency)),
                       sparkline=lines.get(currency),
                       url=admin_list(TradingAccount, currency__exact=currency))
        for currency, row in live.items()]
    episodes = _episodes(now)
    top = (TradingAccount.objects.filter(is_active=True, drawdown_percent__isnull=False)
           .select_related("user", "guard_state")
           .order_by("-drawdown_percent", "pk")[:TOP_DRAWDOWNS])
    return RiskDashboard(
        now=now,
        kill_switch=_kill_switch(),
        accounts_total=counts["total"],
        guard_levels=_guard_tiles(counts),
        sync_statuses=_sync_tiles(counts),
        oldest_sync_age_seconds=(None if oldest_sync is None
                                 else int((now - oldest_sync).total_seconds())),
        oldest_sync_url=admin_list(TradingAccount, o="9"),  # by last sync, oldest first
        episodes=episodes,
        episodes_total=counts["episodes"],
        episodes_url=admin_list(LiquidationEpisode, status__in="warning,liquidating"),
        closes=closes,
        oldest_open_close_age_seconds=oldest_close,
        divergences=divergences,
        divergences_total=sum(t.count for t in divergences),
        divergences_url=admin_list(OpenDivergence),
        currencies=currencies,
        day_start=day_start,
        top_drawdowns=[DrawdownRow(account=a, url=admin_change(a),
                                   level=_level_of(a)) for a in top],
        sparkline_since=since,
        sparkline_bucket_seconds=width,
    )


def _level_of(account: TradingAccount) -> str:
    try:
        return account.guard_state.level
    except TradingAccount.guard_state.RelatedObjectDoesNotExist:
        return "ok"
