"""Guard settings: the global row, each account's overrides, and what applies to an
account (``effective_settings``). Changed only through ``guard_settings_update`` /
``guard_override_update``, which audit the change."""


from __future__ import annotations

from dataclasses import dataclass
from datetime import time as dt_time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import TradeServer, TradingAccount
from guards import levels
from guards.models import (
    OVERRIDABLE,
    GuardOverride,
    GuardSettings,
    GuardSettingsChange,
)


def guard_settings_get() -> GuardSettings:
    row, _ = GuardSettings.objects.get_or_create(pk=1, defaults={
        "max_drawdown_percent": Decimal(str(settings.MAX_DRAWDOWN_PERCENT)),
        "drawdown_alert_threshold_percent": Decimal(
            str(settings.DRAWDOWN_ALERT_THRESHOLD_PERCENT)),
        "min_equity": Decimal(str(settings.MIN_EQUITY)),
        "pre_liquidation_warning_seconds": settings.PRE_LIQUIDATION_WARNING_SECONDS,
        "price_gap_alert_percent": Decimal(str(settings.PRICE_GAP_ALERT_PERCENT)),
        "bid_ask_spread_max_percent": Decimal(str(settings.BID_ASK_SPREAD_MAX_PERCENT)),
        "min_liquidity_volume_lots": Decimal(str(settings.MIN_LIQUIDITY_VOLUME_LOTS)),
    })
    return row


def settings_snapshot(row: Any, names: tuple[str, ...]) -> dict[str, str | None]:
    return {n: None if getattr(row, n) in (None, "") else str(getattr(row, n)) for n in names}


GLOBAL_FIELDS = (*OVERRIDABLE, "price_gap_alert_percent", "bid_ask_spread_max_percent",
                 "min_liquidity_volume_lots", "market_action", "day_timezone", "day_rollover",
                 "warning_band_points")


def guard_settings_audit(*, scope: str, previous: dict, new: dict, changed_by: Any) -> None:
    """Record one change of guard settings (global or an account's overrides)."""
    if previous != new:
        GuardSettingsChange.objects.create(scope=scope, previous=previous, new=new,
                                           changed_by=changed_by, changed_at=timezone.now())


@dataclass(frozen=True, slots=True)
class Effective:
    thresholds: levels.DrawdownThresholds
    limits: levels.PeriodLimits
    actions: dict[str, str]
    warning_seconds: int
    timezone: str  # where the account's trading day starts: the setting, or its server's
    rollover: dt_time
    band_points: Decimal


def _server_zones(account_ids: list[int] | QuerySet) -> dict[int, str]:
    """Each account's trade server time zone (UTC when the server is not registered)."""
    rows = TradingAccount.objects.filter(pk__in=account_ids).values_list("pk", "server")
    servers = {name for _, name in rows}
    zones = dict(TradeServer.objects.filter(name__in=servers).values_list("name", "timezone"))
    return {pk: zones.get(name, "UTC") for pk, name in rows}


def effective_settings(account_ids: list[int] | QuerySet) -> dict[int, Effective]:
    """Global settings with each account's overrides applied. Four queries at most (five
    for a queryset). ``account_ids``: a list, or a queryset of ids
    (``values_list("pk", flat=True)``) used as a subquery, with no parameter per account
    (a mark-to-market pass over thousands of accounts).

    The trading day (daily-loss floor) is the broker's: it starts at ``day_rollover`` in
    the account's trade server zone, unless the owner set ``day_timezone``."""
    base = guard_settings_get()
    within = account_ids if isinstance(account_ids, QuerySet) else list(account_ids)
    overrides = {o.account_id: o for o in GuardOverride.objects.filter(
        account_id__in=within)}
    zones = {} if base.day_timezone else _server_zones(within)
    result: dict[int, Effective] = {}
    shared: dict[str, Effective] = {}  # accounts without overrides share one per zone
    for account_id in list(within):
        o = overrides.get(account_id)
        zone = base.day_timezone or zones.get(account_id, "UTC")
        if o is None and zone in shared:
            result[account_id] = shared[zone]
            continue

        def pick(name: str, o: GuardOverride | None = o) -> Any:
            value = getattr(o, name, None) if o is not None else None
            return getattr(base, name) if value in (None, "") else value

        result[account_id] = Effective(
            thresholds=levels.DrawdownThresholds(
                alert_percent=pick("drawdown_alert_threshold_percent"),
                max_percent=pick("max_drawdown_percent"), min_equity=pick("min_equity")),
            limits=levels.PeriodLimits(
                daily_loss_percent=pick("daily_loss_percent"),
                max_loss_percent=pick("max_loss_percent"),
                trailing_drawdown_percent=pick("trailing_drawdown_percent")),
            actions={"daily_loss": pick("daily_loss_action"),
                     "max_loss": pick("max_loss_action"),
                     "trailing_drawdown": pick("trailing_drawdown_action")},
            warning_seconds=int(pick("pre_liquidation_warning_seconds")),
            timezone=zone,
            rollover=base.day_rollover,
            band_points=base.warning_band_points,
        )
        if o is None:
            shared[zone] = result[account_id]
    return result


@transaction.atomic
def guard_settings_update(*, changed_by: Any, **changes: Any) -> GuardSettings:
    """Change the global guard settings and audit it (one ``GuardSettingsChange`` with the
    fields before and after), under a row lock so two owners saving at once are each
    audited against what they really replaced. ``changes`` are model field names; values
    are validated by the model's fields (``full_clean``): raises ValidationError for a bad
    value and ValueError for an unknown field."""
    unknown = set(changes) - {f.name for f in GuardSettings._meta.concrete_fields}
    if unknown:
        raise ValueError(f"unknown guard settings: {sorted(unknown)}")
    guard_settings_get()
    row = GuardSettings.objects.select_for_update().get(pk=1)
    previous = settings_snapshot(row, GLOBAL_FIELDS)
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_by = changed_by
    row.full_clean()
    row.save()
    row.refresh_from_db()  # audit the stored values (20 and 20.00 are one setting)
    guard_settings_audit(scope="global", previous=previous, changed_by=changed_by,
                         new=settings_snapshot(row, GLOBAL_FIELDS))
    return row


@transaction.atomic
def guard_override_update(*, account_id: int, changed_by: Any,
                          **changes: Any) -> GuardOverride:
    """Set an account's overrides (a blank value means "the global setting") and audit the
    change as scope ``account:<id>``. Raises ValidationError / ValueError as
    ``guard_settings_update``."""
    unknown = set(changes) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"unknown guard overrides: {sorted(unknown)}")
    GuardOverride.objects.get_or_create(account_id=account_id)
    row = GuardOverride.objects.select_for_update().get(account_id=account_id)
    previous = settings_snapshot(row, OVERRIDABLE)
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    row.refresh_from_db()
    guard_settings_audit(scope=f"account:{account_id}", previous=previous,
                         new=settings_snapshot(row, OVERRIDABLE), changed_by=changed_by)
    return row
