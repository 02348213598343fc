"""Equity guards: drawdown levels, prop-firm period floors, trading days and market flags.

Pure Decimal arithmetic on aware UTC datetimes; no database, no Django.

Definitions and sources:

- Drawdown, percent of the high-water mark: ``(peak − equity) / peak × 100``
  (``positions.pnl.drawdown_percent``), compared with the settings
  ``DRAWDOWN_ALERT_THRESHOLD_PERCENT`` (warning) and ``MAX_DRAWDOWN_PERCENT`` (critical);
  equity below ``MIN_EQUITY`` (account currency) is critical whatever the drawdown.
- Period floors, the equity levels prop-trading firms enforce (FTMO "Maximum Daily Loss" and
  "Maximum Loss"; the trailing drawdown of Apex / Topstep / The5ers style evaluations). All
  three percentages are of the *initial* balance, so each is a fixed amount of money:

  * daily: ``start-of-day balance − daily % × initial balance``;
  * max loss (static): ``initial balance × (1 − max loss %)``;
  * trailing: ``max(peak equity, initial balance) − trailing % × initial balance``, never
    above the initial balance: the floor trails the high-water mark until it reaches the
    initial balance and then stays there (the common prop-firm rule, "the trailing drawdown
    stops trailing once it reaches the starting balance").

  An account breaches a floor when its equity is strictly below it.
- Price gap, percent of the previous close: ``|open − previous close| / previous close × 100``.
- Bid/ask spread, percent of the bid: ``(ask − bid) / bid × 100`` (settings
  ``PRICE_GAP_ALERT_PERCENT``, ``BID_ASK_SPREAD_MAX_PERCENT``, ``MIN_LIQUIDITY_VOLUME_LOTS``).

Money is in the account currency, rounded to 0.01 half up as MetaTrader 5 displays it
(``positions.pnl.money``); volumes are in lots.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from positions.pnl import HUNDRED, drawdown_percent, high_water_mark, money

ZERO = Decimal(0)
#: Within this many percentage points of ``max_percent`` the guard syncs every second.
CRITICAL_APPROACH_POINTS = Decimal(2)
#: Sync cadence, seconds, near the critical level and at or above the warning level.
CRITICAL_CADENCE_SECONDS = 1
WARNING_CADENCE_SECONDS = 5


class Level(enum.StrEnum):
    """How close an account is to its equity limits, least to most severe."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def severity(self) -> int:
        """0 for ok, 1 for warning, 2 for critical: compare levels with this, not by name."""
        return _SEVERITY[self]


_SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class DrawdownThresholds:
    """Drawdown limits: percents of the high-water mark, and a minimum equity.

    ``alert_percent`` is DRAWDOWN_ALERT_THRESHOLD_PERCENT (e.g. 15), ``max_percent`` is
    MAX_DRAWDOWN_PERCENT (e.g. 20), ``min_equity`` is MIN_EQUITY in the account currency
    (e.g. 100). Requires ``0 < alert_percent ≤ max_percent`` and ``min_equity ≥ 0``.
    """

    alert_percent: Decimal
    max_percent: Decimal
    min_equity: Decimal

    def __post_init__(self) -> None:
        if not ZERO < self.alert_percent <= self.max_percent:
            raise ValueError(
                f"need 0 < alert_percent ≤ max_percent, got {self.alert_percent} "
                f"and {self.max_percent}")
        if self.min_equity < 0:
            raise ValueError(f"min_equity must not be negative, got {self.min_equity}")


@dataclass(frozen=True, slots=True)
class DrawdownReading:
    """A drawdown level: ``drawdown_percent`` is ``(peak − equity) / peak × 100``, 2 dp, ≥ 0;
    ``reason`` is "ok", "drawdown_warning", "drawdown_critical" or "equity_below_minimum"."""

    level: Level
    drawdown_percent: Decimal
    reason: str


def drawdown_level(*, peak_equity: Decimal, equity: Decimal,
                   thresholds: DrawdownThresholds, previous: Level = Level.OK,
                   band_points: Decimal = ZERO) -> DrawdownReading:
    """The drawdown level of an account, from its high-water mark and current equity.

    ``peak_equity`` and ``equity`` in the account currency. The drawdown is
    ``(max(peak, equity) − equity) / max(peak, equity) × 100``, percent, rounded to 0.01 half up
    (``positions.pnl.drawdown_percent``); a non-positive peak has a drawdown of 0. The thresholds
    are compared with the rounded figure, so the level always agrees with the figure shown.

    - critical, "drawdown_critical": drawdown ≥ ``max_percent``;
    - critical, "equity_below_minimum": equity < ``min_equity`` (reported only when the
      drawdown alone is not critical);
    - warning, "drawdown_warning": drawdown ≥ ``alert_percent``;
    - ok, "ok": otherwise.

    Hysteresis: an account whose ``previous`` level was warning or critical stays at warning
    ("drawdown_warning") until its drawdown is strictly below ``alert_percent −
    band_points`` (GuardSettings.warning_band_points, default 1 point), so a drawdown
    hovering at the warning level gives one warning, not ok→warning→ok chatter.
    """
    peak = high_water_mark(previous_peak=peak_equity, equity=equity)
    drawdown = drawdown_percent(peak_equity=peak, equity=equity)
    if drawdown >= thresholds.max_percent:
        return DrawdownReading(Level.CRITICAL, drawdown, "drawdown_critical")
    if equity < thresholds.min_equity:
        return DrawdownReading(Level.CRITICAL, drawdown, "equity_below_minimum")
    if drawdown >= thresholds.alert_percent:
        return DrawdownReading(Level.WARNING, drawdown, "drawdown_warning")
    if previous is not Level.OK and drawdown >= thresholds.alert_percent - band_points:
        return DrawdownReading(Level.WARNING, drawdown, "drawdown_warning")
    return DrawdownReading(Level.OK, drawdown, "ok")


def sync_cadence_seconds(*, drawdown_percent: Decimal, thresholds: DrawdownThresholds,
                         default: int) -> int:
    """Seconds between position syncs, tighter as the drawdown nears the critical level.

    ``drawdown_percent`` in percent of the high-water mark (``DrawdownReading``).

    - at or above ``max_percent − 2`` percentage points (this includes already critical):
      1 s;
    - at or above ``alert_percent``: ``min(default, 5)`` s;
    - otherwise ``default`` s.

    The result is always between 1 and ``default``; ``default`` must be at least 1.
    """
    if default < 1:
        raise ValueError(f"default cadence must be at least 1 second, got {default}")
    if drawdown_percent >= thresholds.max_percent - CRITICAL_APPROACH_POINTS:
        return CRITICAL_CADENCE_SECONDS
    if drawdown_percent >= thresholds.alert_percent:
        return min(default, WARNING_CADENCE_SECONDS)
    return default


# --- period guards -----------------------------------------------------------------------


class PeriodRule(enum.StrEnum):
    """A prop-firm loss rule, each a floor under the equity."""

    DAILY_LOSS = "daily_loss"
    MAX_LOSS = "max_loss"
    TRAILING_DRAWDOWN = "trailing_drawdown"


def _check_limit(name: str, value: Decimal | None) -> None:
    if value is not None and not ZERO < value <= HUNDRED:
        raise ValueError(f"{name} must be None or in (0, 100], got {value}")


@dataclass(frozen=True, slots=True)
class PeriodLimits:
    """Loss limits, each a percent of the INITIAL balance in (0, 100]; ``None`` = rule off."""

    daily_loss_percent: Decimal | None
    max_loss_percent: Decimal | None
    trailing_drawdown_percent: Decimal | None

    def __post_init__(self) -> None:
        _check_limit("daily_loss_percent", self.daily_loss_percent)
        _check_limit("max_loss_percent", self.max_loss_percent)
        _check_limit("trailing_drawdown_percent", self.trailing_drawdown_percent)


@dataclass(frozen=True, slots=True)
class PeriodBreach:
    """Equity strictly below a period floor. ``floor`` and ``equity`` in the account currency
    (``floor`` 2 dp); ``detail`` explains the floor's arithmetic for people."""

    rule: PeriodRule
    floor: Decimal
    equity: Decimal
    detail: str


def _amount(value: Decimal) -> str:
    """Money for people: 2 dp with thousands separators, e.g. 10,000.00."""
    return f"{money(value):,}"


def _percent(value: Decimal) -> str:
    """A percent for people without trailing zeros: 5, 0.5, 100."""
    return f"{value.normalize():f}"


def _fraction_of(percent: Decimal, amount: Decimal) -> Decimal:
    return percent / HUNDRED * amount


def _trailing_floor(*, initial_balance: Decimal, peak_equity: Decimal,
                    percent: Decimal) -> tuple[Decimal, Decimal, bool]:
    """(floor, the peak it trails, whether it is capped at the initial balance)."""
    base = high_water_mark(previous_peak=peak_equity, equity=initial_balance)
    floor = base - _fraction_of(percent, initial_balance)
    if floor > initial_balance:
        return money(initial_balance), base, True
    return money(floor), base, False


def _check_balance(initial_balance: Decimal) -> None:
    if initial_balance <= 0:
        raise ValueError(f"initial_balance must be positive, got {initial_balance}")


def period_floors(*, initial_balance: Decimal, day_start_balance: Decimal,
                  peak_equity: Decimal, limits: PeriodLimits) -> dict[PeriodRule, Decimal]:
    """The equity floors of the enabled period rules, account currency, 2 dp (half up).

    All amounts in the account currency; percents of ``initial_balance`` (which must be
    positive). Rules whose limit is ``None`` are left out; keys in the order daily, max,
    trailing.

    - daily loss: ``day_start_balance − daily_loss_percent % × initial_balance``
      (FTMO "Maximum Daily Loss", measured from the balance at the start of the trading day,
      see ``trading_day_start``);
    - max loss (static): ``initial_balance × (1 − max_loss_percent %)`` (FTMO "Maximum Loss");
    - trailing drawdown: ``max(peak_equity, initial_balance) − trailing_drawdown_percent % ×
      initial_balance``, capped at ``initial_balance``: once the floor has trailed up to the
      initial balance it stops trailing (the common prop-firm rule: after enough profit the
      floor locks in break-even on the initial balance and never demands more than that).
    """
    _check_balance(initial_balance)
    floors: dict[PeriodRule, Decimal] = {}
    if limits.daily_loss_percent is not None:
        floors[PeriodRule.DAILY_LOSS] = money(
            day_start_balance - _fraction_of(limits.daily_loss_percent, initial_balance))
    if limits.max_loss_percent is not None:
        floors[PeriodRule.MAX_LOSS] = money(
            initial_balance * (1 - limits.max_loss_percent / HUNDRED))
    if limits.trailing_drawdown_percent is not None:
        floors[PeriodRule.TRAILING_DRAWDOWN] = _trailing_floor(
            initial_balance=initial_balance, peak_equity=peak_equity,
            percent=limits.trailing_drawdown_percent)[0]
    return floors


def period_breaches(*, equity: Decimal, initial_balance: Decimal, day_start_balance: Decimal,
                    peak_equity: Decimal, limits: PeriodLimits) -> list[PeriodBreach]:
    """The period rules whose floor the equity is strictly below, in the order daily, max,
    trailing.

    All amounts in the account currency; floors as in ``period_floors`` (2 dp). Rules whose
    limit is ``None`` are skipped. ``detail`` shows the floor's arithmetic, e.g.
    "equity 9,380.00 below the daily floor 9,500.00 (start-of-day balance 10,000.00 − 5 % of
    the initial 10,000.00)".
    """
    floors = period_floors(initial_balance=initial_balance, day_start_balance=day_start_balance,
                           peak_equity=peak_equity, limits=limits)
    initial = _amount(initial_balance)
    breaches: list[PeriodBreach] = []
    for rule, floor in floors.items():
        if not equity < floor:
            continue
        head = f"equity {_amount(equity)} below the"
        if rule is PeriodRule.DAILY_LOSS:
            assert limits.daily_loss_percent is not None
            detail = (f"{head} daily floor {_amount(floor)} (start-of-day balance "
                      f"{_amount(day_start_balance)} − {_percent(limits.daily_loss_percent)} % "
                      f"of the initial {initial})")
        elif rule is PeriodRule.MAX_LOSS:
            assert limits.max_loss_percent is not None
            detail = (f"{head} max-loss floor {_amount(floor)} (initial balance {initial} − "
                      f"{_percent(limits.max_loss_percent)} %)")
        else:
            assert limits.trailing_drawdown_percent is not None
            _, base, capped = _trailing_floor(initial_balance=initial_balance,
                                              peak_equity=peak_equity,
                                              percent=limits.trailing_drawdown_percent)
            cap = ", capped at the initial balance" if capped else ""
            detail = (f"{head} trailing floor {_amount(floor)} (high-water mark "
                      f"{_amount(base)} − {_percent(limits.trailing_drawdown_percent)} % "
                      f"of the initial {initial}{cap})")
        breaches.append(PeriodBreach(rule=rule, floor=floor, equity=equity, detail=detail))
    return breaches


def trading_day_start(*, now: datetime, tz: str, rollover: time = time(0)) -> datetime:
    """The start of the trading day containing ``now``: the last ``rollover`` (local wall
    clock, 00:00 by default: most brokers roll at midnight server time) in the IANA zone
    ``tz`` at or before ``now``, as an aware UTC datetime.

    ``now`` must be aware (any offset). Local midnight is resolved with ``fold=0`` (PEP 495):
    where a DST change skips midnight (e.g. America/Santiago) this gives the first instant of
    the day, 01:00 local; where midnight occurs twice, the earlier one. Raises ``ValueError``
    for a naive ``now`` or an unknown zone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    local = now.astimezone(zone)
    start = datetime.combine(local.date(), rollover, tzinfo=zone)
    if start.astimezone(UTC) > now:
        start = datetime.combine(local.date() - timedelta(days=1), rollover, tzinfo=zone)
    return start.astimezone(UTC)


# --- market guard ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketLimits:
    """Market-quality limits: ``gap_percent`` (PRICE_GAP_ALERT_PERCENT, e.g. 5) and
    ``spread_max_percent`` (BID_ASK_SPREAD_MAX_PERCENT, e.g. 0.5) in percent,
    ``min_liquidity_lots`` (MIN_LIQUIDITY_VOLUME_LOTS, e.g. 10) in lots; none negative."""

    gap_percent: Decimal
    spread_max_percent: Decimal
    min_liquidity_lots: Decimal

    def __post_init__(self) -> None:
        for name in ("gap_percent", "spread_max_percent", "min_liquidity_lots"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class MarketFlag:
    """A market-quality flag. ``kind`` is "gap", "spread" or "liquidity"; ``value`` is the
    measured figure and ``limit`` the limit it broke (percent for gap and spread, lots for
    liquidity); ``value`` is unrounded, ``detail`` (for people) shows it rounded."""

    kind: str
    value: Decimal
    limit: Decimal
    detail: str


def price_gap_percent(*, previous_close: Decimal, open_price: Decimal) -> Decimal:
    """``|open − previous close| / previous close × 100``: the gap, percent of the previous
    close, unrounded. Prices in the symbol's quote currency. ``ValueError`` if
    ``previous_close ≤ 0``."""
    if previous_close <= 0:
        raise ValueError(f"previous_close must be positive, got {previous_close}")
    return abs(open_price - previous_close) / previous_close * HUNDRED


def _shown(value: Decimal, places: int = 2) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):f}"


def market_flags(*, previous_close: Decimal | None, open_price: Decimal | None, bid: Decimal,
                 ask: Decimal, offered_volume: Decimal | None, position_volume: Decimal,
                 limits: MarketLimits) -> list[MarketFlag]:
    """Gap, spread and liquidity flags for one symbol, in that order.

    Prices in the symbol's quote currency, volumes in lots.

    - gap: ``price_gap_percent(previous_close, open_price) > gap_percent`` (strictly);
      skipped when either price is ``None``; ``ValueError`` if ``previous_close ≤ 0``;
    - spread: ``(ask − bid) / bid × 100 > spread_max_percent`` (strictly); ``ValueError`` if
      ``bid ≤ 0``;
    - liquidity: only when ``offered_volume`` is known (not ``None`` and > 0; brokers that do
      not publish depth report 0): the offered volume is below the position's volume or
      below ``min_liquidity_lots``, i.e. ``offered < max(position, min_liquidity_lots)``.
      One flag; ``value`` is the offered volume, ``limit`` that maximum.
    """
    flags: list[MarketFlag] = []
    if previous_close is not None and open_price is not None:
        gap = price_gap_percent(previous_close=previous_close, open_price=open_price)
        if gap > limits.gap_percent:
            flags.append(MarketFlag(
                kind="gap", value=gap, limit=limits.gap_percent,
                detail=(f"open {open_price} gapped {_shown(gap)} % from the previous close "
                        f"{previous_close} (limit {_percent(limits.gap_percent)} %)")))
    if bid <= 0:
        raise ValueError(f"bid must be positive, got {bid}")
    spread = (ask - bid) / bid * HUNDRED
    if spread > limits.spread_max_percent:
        flags.append(MarketFlag(
            kind="spread", value=spread, limit=limits.spread_max_percent,
            detail=(f"spread {_shown(spread, 4)} % (bid {bid}, ask {ask}) above the limit "
                    f"{_percent(limits.spread_max_percent)} %")))
    if offered_volume is not None and offered_volume > 0:
        reasons = []
        if position_volume > offered_volume:
            reasons.append(f"the position's {_percent(position_volume)} lots")
        if offered_volume < limits.min_liquidity_lots:
            reasons.append(f"the minimum {_percent(limits.min_liquidity_lots)} lots")
        if reasons:
            flags.append(MarketFlag(
                kind="liquidity", value=offered_volume,
                limit=max(position_volume, limits.min_liquidity_lots),
                detail=(f"offered volume {_percent(offered_volume)} lots below "
                        + " and ".join(reasons))))
    return flags


def gaps_in_bars(bars: Iterable[tuple[datetime, Decimal, Decimal]], *,
                 threshold_percent: Decimal) -> list[tuple[datetime, Decimal]]:
    """The bars whose open gapped from the previous bar's close by more than
    ``threshold_percent`` (strictly), as (time of the gapping bar, gap % unrounded).

    ``bars`` are (time, open, close) in strictly increasing time order, prices in the quote
    currency; the gap is ``price_gap_percent`` (percent of the previous close). The first bar
    has no previous close and is never flagged. ``ValueError`` for bars out of order or a
    non-positive close.
    """
    gaps: list[tuple[datetime, Decimal]] = []
    previous: tuple[datetime, Decimal] | None = None
    for when, open_price, close in bars:
        if previous is not None:
            previous_time, previous_close = previous
            if when <= previous_time:
                raise ValueError(f"bars out of order: {when} after {previous_time}")
            gap = price_gap_percent(previous_close=previous_close, open_price=open_price)
            if gap > threshold_percent:
                gaps.append((when, gap))
        previous = (when, close)
    return gaps
