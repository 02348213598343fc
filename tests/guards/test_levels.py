"""Equity guards against hand-computed figures, the real EURUSD H1 bars, and properties.

Every expected figure is worked out in the comment beside it from the definitions in
guards/levels.py (drawdown of the high-water mark, prop-firm floors as percents of the
initial balance, gaps and spreads as percents), not from the code.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guards.levels import (
    DrawdownReading,
    DrawdownThresholds,
    Level,
    MarketFlag,
    MarketLimits,
    PeriodBreach,
    PeriodLimits,
    PeriodRule,
    drawdown_level,
    gaps_in_bars,
    market_flags,
    period_breaches,
    period_floors,
    price_gap_percent,
    sync_cadence_seconds,
    trading_day_start,
)

ROOT = Path(__file__).resolve().parents[2]
EURUSD_H1 = ROOT / "brokers" / "sim" / "EURUSD_H1.csv"

THRESHOLDS = DrawdownThresholds(alert_percent=D("15"), max_percent=D("20"), min_equity=D("100"))

# --- drawdown levels: (peak − equity) / peak × 100, alert 15, max 20, minimum equity 100 ---
DRAWDOWN_CASES = [
    # 10,000 → 9,000: 1,000 / 10,000 × 100 = 10.00 < 15 → ok
    (D("10000"), D("9000"), Level.OK, D("10.00"), "ok"),
    # 10,000 → 8,501: 1,499 / 10,000 × 100 = 14.99 < 15 → ok
    (D("10000"), D("8501"), Level.OK, D("14.99"), "ok"),
    # 10,000 → 8,500: 1,500 / 10,000 × 100 = 15.00, exactly the alert → warning
    (D("10000"), D("8500"), Level.WARNING, D("15.00"), "drawdown_warning"),
    # 10,000 → 8,500.50: 1,499.50 / 10,000 × 100 = 14.995 → 15.00 (half up) → warning
    (D("10000"), D("8500.50"), Level.WARNING, D("15.00"), "drawdown_warning"),
    # 10,000 → 8,001: 1,999 / 10,000 × 100 = 19.99 < 20 → warning
    (D("10000"), D("8001"), Level.WARNING, D("19.99"), "drawdown_warning"),
    # 10,000 → 8,000: 2,000 / 10,000 × 100 = 20.00, exactly the maximum → critical
    (D("10000"), D("8000"), Level.CRITICAL, D("20.00"), "drawdown_critical"),
    # 101 → 99: 2 / 101 × 100 = 1.980… → 1.98, tiny, but 99 < minimum 100 → critical
    (D("101"), D("99"), Level.CRITICAL, D("1.98"), "equity_below_minimum"),
    # 500 → 90: 410 / 500 × 100 = 82.00 ≥ 20: the drawdown reason wins over 90 < 100
    (D("500"), D("90"), Level.CRITICAL, D("82.00"), "drawdown_critical"),
    # peak 0: no meaningful drawdown, 0.00; equity 50 < 100 → critical
    (D("0"), D("50"), Level.CRITICAL, D("0.00"), "equity_below_minimum"),
    # peak 0, equity 0: 0.00; 0 < 100 → critical
    (D("0"), D("0"), Level.CRITICAL, D("0.00"), "equity_below_minimum"),
    # peak −200 (negative account), equity 150 ≥ 100: 0.00 → ok
    (D("-200"), D("150"), Level.OK, D("0.00"), "ok"),
    # equity 10,500 above the peak 10,000: a new high, 0.00 → ok
    (D("10000"), D("10500"), Level.OK, D("0.00"), "ok"),
]


@pytest.mark.parametrize(("peak", "equity", "level", "drawdown", "reason"), DRAWDOWN_CASES)
def test_drawdown_level(peak, equity, level, drawdown, reason):
    got = drawdown_level(peak_equity=peak, equity=equity, thresholds=THRESHOLDS)
    assert got == DrawdownReading(level=level, drawdown_percent=drawdown, reason=reason)
    assert got.drawdown_percent.as_tuple().exponent == -2


def test_level_severity_orders_levels():
    assert Level.OK.severity < Level.WARNING.severity < Level.CRITICAL.severity
    assert Level("critical") is Level.CRITICAL
    assert f"{Level.WARNING}" == "warning"


@pytest.mark.parametrize(("alert", "maximum", "minimum"), [
    (D("0"), D("20"), D("100")),     # alert must be positive
    (D("25"), D("20"), D("100")),    # alert above the maximum
    (D("15"), D("20"), D("-1")),     # negative minimum equity
])
def test_drawdown_thresholds_reject_nonsense(alert, maximum, minimum):
    with pytest.raises(ValueError):
        DrawdownThresholds(alert_percent=alert, max_percent=maximum, min_equity=minimum)


# --- sync cadence: max 20 → 1 s from 20 − 2 = 18.00; alert 15 → min(default, 5) s ---
CADENCE_CASES = [
    (D("0.00"), 30, 30),    # below the alert: the default
    (D("14.99"), 30, 30),   # 14.99 < 15: the default
    (D("15.00"), 30, 5),    # 15.00 ≥ 15: min(30, 5) = 5
    (D("17.99"), 30, 5),    # 17.99 < 20 − 2 = 18: still min(30, 5) = 5
    (D("18.00"), 30, 1),    # 18.00 ≥ 20 − 2 = 18: 1 s
    (D("20.00"), 30, 1),    # critical: 1 s
    (D("85.00"), 30, 1),    # far past critical: 1 s
    (D("15.00"), 3, 3),     # min(3, 5) = 3: never slower than the default
    (D("0.00"), 1, 1),      # default 1 stays 1
]


@pytest.mark.parametrize(("drawdown", "default", "expected"), CADENCE_CASES)
def test_sync_cadence_tightens_near_critical(drawdown, default, expected):
    got = sync_cadence_seconds(drawdown_percent=drawdown, thresholds=THRESHOLDS, default=default)
    assert got == expected


def test_sync_cadence_rejects_default_below_one_second():
    with pytest.raises(ValueError):
        sync_cadence_seconds(drawdown_percent=D("0"), thresholds=THRESHOLDS, default=0)


# --- period floors: percents of the initial balance 10,000 ---
ALL_RULES = PeriodLimits(daily_loss_percent=D("5"), max_loss_percent=D("10"),
                         trailing_drawdown_percent=D("6"))

FLOOR_CASES = [
    # daily: 10,200 − 5 % × 10,000 = 10,200 − 500 = 9,700
    # max:   10,000 × (1 − 10 %) = 9,000
    # trail: max(10,400, 10,000) − 6 % × 10,000 = 10,400 − 600 = 9,800
    (D("10200"), D("10400"), D("9700.00"), D("9000.00"), D("9800.00")),
    # trail: 11,000 − 600 = 10,400 > 10,000 → capped at the initial 10,000
    (D("10200"), D("11000"), D("9700.00"), D("9000.00"), D("10000.00")),
    # trail: 10,600 − 600 = 10,000, exactly the initial balance
    (D("10200"), D("10600"), D("9700.00"), D("9000.00"), D("10000.00")),
    # peak 9,500 below the initial: trails from max(9,500, 10,000) = 10,000 → 10,000 − 600 = 9,400
    # daily after a losing day: 9,650 − 500 = 9,150
    (D("9650"), D("9500"), D("9150.00"), D("9000.00"), D("9400.00")),
]


@pytest.mark.parametrize(("day_start", "peak", "daily", "maximum", "trailing"), FLOOR_CASES)
def test_period_floors(day_start, peak, daily, maximum, trailing):
    got = period_floors(initial_balance=D("10000"), day_start_balance=day_start,
                        peak_equity=peak, limits=ALL_RULES)
    assert got == {PeriodRule.DAILY_LOSS: daily, PeriodRule.MAX_LOSS: maximum,
                   PeriodRule.TRAILING_DRAWDOWN: trailing}
    assert list(got) == [PeriodRule.DAILY_LOSS, PeriodRule.MAX_LOSS,
                         PeriodRule.TRAILING_DRAWDOWN]


def test_period_floors_skip_rules_that_are_off():
    limits = PeriodLimits(daily_loss_percent=None, max_loss_percent=D("10"),
                          trailing_drawdown_percent=None)
    # only max loss: 10,000 × 0.9 = 9,000
    assert period_floors(initial_balance=D("10000"), day_start_balance=D("10200"),
                         peak_equity=D("10400"), limits=limits) == {
        PeriodRule.MAX_LOSS: D("9000.00")}
    off = PeriodLimits(daily_loss_percent=None, max_loss_percent=None,
                       trailing_drawdown_percent=None)
    assert period_breaches(equity=D("1"), initial_balance=D("10000"),
                           day_start_balance=D("10200"), peak_equity=D("10400"),
                           limits=off) == []


BREACH_CASES = [
    # floors 9,700 / 9,000 / 9,800 (day start 10,200, peak 10,400): 9,850 is above all three
    (D("9850"), []),
    # 9,800.00 is not strictly below the trailing floor 9,800.00
    (D("9800.00"), []),
    # 9,799.99 < 9,800: trailing only
    (D("9799.99"), [PeriodRule.TRAILING_DRAWDOWN]),
    # 9,700.00 < 9,800 (trailing) but not < 9,700 (daily)
    (D("9700.00"), [PeriodRule.TRAILING_DRAWDOWN]),
    # 9,699.99 < 9,700 and < 9,800: daily then trailing
    (D("9699.99"), [PeriodRule.DAILY_LOSS, PeriodRule.TRAILING_DRAWDOWN]),
    # 8,950 below all three: daily, max, trailing in that order
    (D("8950"), [PeriodRule.DAILY_LOSS, PeriodRule.MAX_LOSS, PeriodRule.TRAILING_DRAWDOWN]),
]


@pytest.mark.parametrize(("equity", "rules"), BREACH_CASES)
def test_period_breaches(equity, rules):
    got = period_breaches(equity=equity, initial_balance=D("10000"),
                          day_start_balance=D("10200"), peak_equity=D("10400"),
                          limits=ALL_RULES)
    assert [breach.rule for breach in got] == rules
    floors = {PeriodRule.DAILY_LOSS: D("9700.00"), PeriodRule.MAX_LOSS: D("9000.00"),
              PeriodRule.TRAILING_DRAWDOWN: D("9800.00")}
    for breach in got:
        assert breach.floor == floors[breach.rule]
        assert breach.equity == equity


def test_period_breach_details_read_for_people():
    # daily: 10,000 − 5 % × 10,000 = 9,500; 9,380 < 9,500
    limits = PeriodLimits(daily_loss_percent=D("5"), max_loss_percent=None,
                          trailing_drawdown_percent=None)
    assert period_breaches(equity=D("9380"), initial_balance=D("10000"),
                           day_start_balance=D("10000"), peak_equity=D("10000"),
                           limits=limits) == [PeriodBreach(
        rule=PeriodRule.DAILY_LOSS, floor=D("9500.00"), equity=D("9380"),
        detail=("equity 9,380.00 below the daily floor 9,500.00 (start-of-day balance "
                "10,000.00 − 5 % of the initial 10,000.00)"))]
    # max: 10,000 × 0.9 = 9,000; trailing: 11,000 − 600 = 10,400 → capped at 10,000
    limits = PeriodLimits(daily_loss_percent=None, max_loss_percent=D("10.0"),
                          trailing_drawdown_percent=D("6.00"))
    got = period_breaches(equity=D("8999.99"), initial_balance=D("10000"),
                          day_start_balance=D("10000"), peak_equity=D("11000"),
                          limits=limits)
    assert [b.detail for b in got] == [
        "equity 8,999.99 below the max-loss floor 9,000.00 (initial balance 10,000.00 − 10 %)",
        ("equity 8,999.99 below the trailing floor 10,000.00 (high-water mark 11,000.00 − "
         "6 % of the initial 10,000.00, capped at the initial balance)"),
    ]


@pytest.mark.parametrize("percent", [D("0"), D("-5"), D("100.01")])
def test_period_limits_reject_nonsense(percent):
    with pytest.raises(ValueError):
        PeriodLimits(daily_loss_percent=percent, max_loss_percent=None,
                     trailing_drawdown_percent=None)


def test_period_floors_need_a_positive_initial_balance():
    with pytest.raises(ValueError):
        period_floors(initial_balance=D("0"), day_start_balance=D("0"), peak_equity=D("0"),
                      limits=ALL_RULES)


# --- trading day start: local 00:00 as UTC ---
def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


DAY_START_CASES = [
    # Athens, spring forward 2024-03-31 03:00 EET (+2) → 04:00 EEST (+3).
    # 12:00 UTC = 15:00 EEST on the 31st; its midnight was still EET: 00:00 − 2 h = 30th 22:00 UTC
    ("Europe/Athens", _utc(2024, 3, 31, 12), _utc(2024, 3, 30, 22)),
    # 2024-04-01 00:30 UTC = 03:30 EEST on the 1st; midnight EEST: 00:00 − 3 h = 31st 21:00 UTC
    ("Europe/Athens", _utc(2024, 4, 1, 0, 30), _utc(2024, 3, 31, 21)),
    # around midnight: 2024-03-30 21:59:59 UTC = 23:59:59 EET on the 30th → 29th 22:00 UTC
    ("Europe/Athens", _utc(2024, 3, 30, 21, 59, 59), _utc(2024, 3, 29, 22)),
    # 2024-03-30 22:00:00 UTC = 00:00:00 EET on the 31st: the day starts right now
    ("Europe/Athens", _utc(2024, 3, 30, 22), _utc(2024, 3, 30, 22)),
    # Athens, fall back 2024-10-27 04:00 EEST → 03:00 EET: 12:00 UTC = 14:00 EET on the 27th;
    # its midnight was still EEST (+3): 00:00 − 3 h = 26th 21:00 UTC
    ("Europe/Athens", _utc(2024, 10, 27, 12), _utc(2024, 10, 26, 21)),
    # New York, spring forward 2024-03-10 02:00 EST (−5) → 03:00 EDT (−4):
    # 16:00 UTC = 12:00 EDT on the 10th; midnight EST: 00:00 + 5 h = 10th 05:00 UTC
    ("America/New_York", _utc(2024, 3, 10, 16), _utc(2024, 3, 10, 5)),
    # 2024-03-11 12:00 UTC = 08:00 EDT; midnight EDT: 00:00 + 4 h = 11th 04:00 UTC
    ("America/New_York", _utc(2024, 3, 11, 12), _utc(2024, 3, 11, 4)),
    # New York, fall back 2024-11-03 02:00 EDT → 01:00 EST: 15:00 UTC = 10:00 EST on the 3rd;
    # midnight was EDT: 00:00 + 4 h = 3rd 04:00 UTC (a 25-hour day)
    ("America/New_York", _utc(2024, 11, 3, 15), _utc(2024, 11, 3, 4)),
    # around midnight: 2024-11-03 03:59:59 UTC = 23:59:59 EDT on the 2nd → 2nd 04:00 UTC
    ("America/New_York", _utc(2024, 11, 3, 3, 59, 59), _utc(2024, 11, 2, 4)),
    # 2024-11-03 04:00:00 UTC = 00:00:00 EDT on the 3rd: the day starts right now
    ("America/New_York", _utc(2024, 11, 3, 4), _utc(2024, 11, 3, 4)),
    # Santiago skips midnight: 2023-09-03 00:00 −04 → 01:00 −03. 12:00 UTC = 09:00 −03;
    # the day's first instant is 01:00 −03 = 04:00 UTC
    ("America/Santiago", _utc(2023, 9, 3, 12), _utc(2023, 9, 3, 4)),
]


@pytest.mark.parametrize(("tz", "now", "expected"), DAY_START_CASES)
def test_trading_day_start(tz, now, expected):
    got = trading_day_start(now=now, tz=tz)
    assert got == expected
    assert got.tzinfo is UTC


def test_trading_day_start_accepts_any_aware_now():
    # 2024-03-31 15:00 +03:00 is 12:00 UTC: the same day as the first Athens case
    now = datetime(2024, 3, 31, 15, tzinfo=timezone(timedelta(hours=3)))
    assert trading_day_start(now=now, tz="Europe/Athens") == _utc(2024, 3, 30, 22)


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "America", "", "../etc/passwd"])
def test_trading_day_start_rejects_unknown_zones(tz):
    with pytest.raises(ValueError):
        trading_day_start(now=_utc(2024, 1, 1), tz=tz)


def test_trading_day_start_rejects_naive_now():
    with pytest.raises(ValueError):
        trading_day_start(now=datetime(2024, 1, 1, 12), tz="Europe/Athens")


# --- market flags: gap 5 %, spread 0.5 %, minimum liquidity 10 lots ---
MARKET = MarketLimits(gap_percent=D("5"), spread_max_percent=D("0.5"),
                      min_liquidity_lots=D("10"))


def _flags(*, previous_close=None, open_price=None, bid=D("100.00"), ask=D("100.01"),
           offered_volume=None, position_volume=D("1")):
    return market_flags(previous_close=previous_close, open_price=open_price, bid=bid, ask=ask,
                        offered_volume=offered_volume, position_volume=position_volume,
                        limits=MARKET)


SPREAD_CASES = [
    # (100.50 − 100.00) / 100.00 × 100 = 0.50, not above 0.5 → no flag
    (D("100.00"), D("100.50"), None),
    # (100.51 − 100.00) / 100.00 × 100 = 0.51 > 0.5 → flag
    (D("100.00"), D("100.51"), D("0.51")),
    # EURUSD (1.07280 − 1.07268) / 1.07268 × 100 = 0.00012 / 1.07268 × 100 ≈ 0.0112 → no flag
    (D("1.07268"), D("1.07280"), None),
    # crossed quote: negative spread → no flag
    (D("1.07280"), D("1.07268"), None),
]


@pytest.mark.parametrize(("bid", "ask", "spread"), SPREAD_CASES)
def test_spread_flag(bid, ask, spread):
    got = _flags(bid=bid, ask=ask)
    if spread is None:
        assert got == []
    else:
        assert got == [MarketFlag(kind="spread", value=spread, limit=D("0.5"),
                                  detail=(f"spread {spread}00 % (bid {bid}, ask {ask}) "
                                          "above the limit 0.5 %"))]


LIQUIDITY_CASES = [
    # offered 50 ≥ position 5 and ≥ minimum 10 → fine
    (D("50"), D("5"), None),
    # offered 10 = minimum 10 (not below), position 10 = offered (not above) → fine
    (D("10"), D("10"), None),
    # offered 3 < position 5 and < minimum 10 → flag, limit max(5, 10) = 10
    (D("3"), D("5"), D("10")),
    # offered 12 ≥ minimum 10 but < position 15 → flag, limit max(15, 10) = 15
    (D("12"), D("15"), D("15")),
    # offered 8 < minimum 10, position 1 fits → flag, limit max(1, 10) = 10
    (D("8"), D("1"), D("10")),
    # offered volume unknown (None, or 0 as brokers without depth report it) → no check
    (None, D("500"), None),
    (D("0"), D("500"), None),
]


@pytest.mark.parametrize(("offered", "position", "limit"), LIQUIDITY_CASES)
def test_liquidity_flag(offered, position, limit):
    got = _flags(offered_volume=offered, position_volume=position)
    if limit is None:
        assert got == []
    else:
        [flag] = got
        assert (flag.kind, flag.value, flag.limit) == ("liquidity", offered, limit)


def test_liquidity_flag_detail():
    [flag] = _flags(offered_volume=D("3.00"), position_volume=D("5.00"))
    assert flag.detail == ("offered volume 3 lots below the position's 5 lots "
                           "and the minimum 10 lots")


GAP_CASES = [
    # |105.00 − 100.00| / 100.00 × 100 = 5.00, not above 5 → no flag
    (D("100.00"), D("105.00"), None),
    # |105.01 − 100.00| / 100.00 × 100 = 5.01 > 5 → flag
    (D("100.00"), D("105.01"), D("5.01")),
    # |94.99 − 100.00| / 100.00 × 100 = 5.01 > 5 → flag (gaps down count too)
    (D("100.00"), D("94.99"), D("5.01")),
    # no previous close or no open: no gap check
    (None, D("150.00"), None),
    (D("100.00"), None, None),
]


@pytest.mark.parametrize(("previous_close", "open_price", "gap"), GAP_CASES)
def test_gap_flag(previous_close, open_price, gap):
    got = _flags(previous_close=previous_close, open_price=open_price)
    if gap is None:
        assert got == []
    else:
        assert [(f.kind, f.value, f.limit) for f in got] == [("gap", gap, D("5"))]


def test_flags_come_in_order_gap_spread_liquidity():
    got = _flags(previous_close=D("100"), open_price=D("110"), bid=D("100"), ask=D("101"),
                 offered_volume=D("2"), position_volume=D("1"))
    assert [f.kind for f in got] == ["gap", "spread", "liquidity"]


def test_price_gap_percent():
    # |1.08930 − 1.07268| / 1.07268 × 100 = 0.01662 / 1.07268 × 100 = 1.54939… %
    got = price_gap_percent(previous_close=D("1.07268"), open_price=D("1.08930"))
    assert got.quantize(D("0.0001")) == D("1.5494")
    with pytest.raises(ValueError):
        price_gap_percent(previous_close=D("0"), open_price=D("1"))
    with pytest.raises(ValueError):
        _flags(bid=D("0"), ask=D("1"))


# --- the real bars: brokers/sim/EURUSD_H1.csv (UTC) ---
def _eurusd_bars() -> list[tuple[datetime, D, D]]:
    with EURUSD_H1.open(newline="") as handle:
        return [(datetime.strptime(row["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC),
                 D(row["open"]), D(row["close"])) for row in csv.DictReader(handle)]


def test_gaps_in_real_eurusd_bars():
    bars = _eurusd_bars()
    assert len(bars) == 5000
    # The weekend gap: Friday 2017-04-21 20:00 closed at 1.07268, Sunday 2017-04-23 21:00
    # opened at 1.08930 (the French election first round):
    # (1.08930 − 1.07268) / 1.07268 × 100 = 0.01662 / 1.07268 × 100 = +1.5494 %
    [(when, gap)] = gaps_in_bars(bars, threshold_percent=D("1"))
    assert when == datetime(2017, 4, 23, 21, tzinfo=UTC)
    assert gap.quantize(D("0.0001")) == D("1.5494")
    # nothing comes near the default 5 % alert
    assert gaps_in_bars(bars, threshold_percent=D("5")) == []


def test_gaps_in_bars_small_series():
    t0 = _utc(2024, 1, 1)
    bars = [
        (t0, D("100"), D("100")),
        # |102 − 100| / 100 × 100 = 2 % > 1 → flagged
        (t0 + timedelta(hours=1), D("102"), D("101")),
        # |101.5 − 101| / 101 × 100 = 0.495… % → not flagged
        (t0 + timedelta(hours=2), D("101.5"), D("101")),
    ]
    assert gaps_in_bars(bars, threshold_percent=D("1")) == [(t0 + timedelta(hours=1), D("2"))]
    assert gaps_in_bars([], threshold_percent=D("1")) == []
    assert gaps_in_bars(bars[:1], threshold_percent=D("0")) == []
    with pytest.raises(ValueError):
        gaps_in_bars([bars[1], bars[0]], threshold_percent=D("1"))


# --- properties ---
money_amounts = st.decimals(min_value=D("-100000"), max_value=D("10000000"), places=2,
                            allow_nan=False, allow_infinity=False)
positive_amounts = st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2,
                               allow_nan=False, allow_infinity=False)
percents = st.decimals(min_value=D("0.01"), max_value=D("100"), places=2,
                       allow_nan=False, allow_infinity=False)


@st.composite
def thresholds(draw):
    alert = draw(percents)
    maximum = draw(st.decimals(min_value=alert, max_value=D("100"), places=2,
                               allow_nan=False, allow_infinity=False))
    minimum = draw(st.decimals(min_value=D("0"), max_value=D("100000"), places=2,
                               allow_nan=False, allow_infinity=False))
    return DrawdownThresholds(alert_percent=alert, max_percent=maximum, min_equity=minimum)


@given(peak=money_amounts, equity_a=money_amounts, equity_b=money_amounts,
       limits=thresholds())
def test_more_drawdown_never_lowers_the_level(peak, equity_a, equity_b, limits):
    higher, lower = max(equity_a, equity_b), min(equity_a, equity_b)
    at_higher = drawdown_level(peak_equity=peak, equity=higher, thresholds=limits)
    at_lower = drawdown_level(peak_equity=peak, equity=lower, thresholds=limits)
    assert at_lower.drawdown_percent >= at_higher.drawdown_percent >= 0
    assert at_lower.level.severity >= at_higher.level.severity


@given(initial=positive_amounts, day_start=money_amounts, peak=money_amounts,
       daily=st.none() | percents, maximum=st.none() | percents,
       trailing=st.none() | percents)
def test_period_floors_never_exceed_the_initial_balance(initial, day_start, peak, daily,
                                                         maximum, trailing):
    limits = PeriodLimits(daily_loss_percent=daily, max_loss_percent=maximum,
                          trailing_drawdown_percent=trailing)
    floors = period_floors(initial_balance=initial, day_start_balance=day_start,
                           peak_equity=peak, limits=limits)
    assert set(floors) == {rule for rule, pct in [(PeriodRule.DAILY_LOSS, daily),
                                                  (PeriodRule.MAX_LOSS, maximum),
                                                  (PeriodRule.TRAILING_DRAWDOWN, trailing)]
                           if pct is not None}
    for rule in (PeriodRule.MAX_LOSS, PeriodRule.TRAILING_DRAWDOWN):
        if rule in floors:
            assert floors[rule] <= initial
    if PeriodRule.DAILY_LOSS in floors:
        assert floors[PeriodRule.DAILY_LOSS] <= day_start


@given(drawdown=st.decimals(min_value=D("0"), max_value=D("500"), places=2,
                            allow_nan=False, allow_infinity=False),
       limits=thresholds(), default=st.integers(min_value=1, max_value=3600))
def test_cadence_is_between_one_second_and_the_default(drawdown, limits, default):
    got = sync_cadence_seconds(drawdown_percent=drawdown, thresholds=limits, default=default)
    assert 1 <= got <= default


@given(now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31),
                        timezones=st.just(UTC)),
       tz=st.sampled_from(["Europe/Athens", "America/New_York", "UTC", "Asia/Tokyo"]))
def test_trading_day_start_is_local_midnight_before_now(now, tz):
    start = trading_day_start(now=now, tz=tz)
    assert start.tzinfo is UTC
    assert start <= now < start + timedelta(hours=25)
    local = start.astimezone(ZoneInfo(tz))
    assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    assert local.date() == now.astimezone(ZoneInfo(tz)).date()


# --- hysteresis: back to ok only below warning − band (alert 15, band 1 point) -----------
HYSTERESIS_CASES = [
    # was warning; 10,000 → 8,550: 14.50 ≥ 15 − 1 = 14 → stays warning
    (Level.WARNING, D("8550"), Level.WARNING),
    # was warning; 10,000 → 8,600: 14.00, exactly the band's edge (not below it) → warning
    (Level.WARNING, D("8600"), Level.WARNING),
    # was warning; 10,000 → 8,601: 13.99 < 14 → ok
    (Level.WARNING, D("8601"), Level.OK),
    # was critical, recovered to 14.50: warning, not ok
    (Level.CRITICAL, D("8550"), Level.WARNING),
    # was ok; 14.50 < 15 → ok (the band only delays the way back)
    (Level.OK, D("8550"), Level.OK),
    # was warning, now 20.00 → critical as ever
    (Level.WARNING, D("8000"), Level.CRITICAL),
]


@pytest.mark.parametrize(("previous", "equity", "level"), HYSTERESIS_CASES)
def test_hysteresis_band(previous, equity, level):
    got = drawdown_level(peak_equity=D("10000"), equity=equity, thresholds=THRESHOLDS,
                         previous=previous, band_points=D("1"))
    assert got.level == level


@given(st.lists(st.decimals(min_value=D("13.50"), max_value=D("16.50"), places=2),
                min_size=2, max_size=40))
def test_property_no_chatter_within_the_band(drawdowns):
    """A drawdown wandering between 14.00 and 16.50 (alert 15, band 1) warns once and never
    flips back to ok: every ok→warning→ok sequence needs a dip below 14."""
    level = Level.OK
    transitions = []
    for dd in drawdowns:
        equity = D("10000") - dd * D("100")  # peak 10,000: drawdown dd % exactly
        reading = drawdown_level(peak_equity=D("10000"), equity=equity, thresholds=THRESHOLDS,
                                 previous=level, band_points=D("1"))
        if reading.level != level:
            transitions.append((level, reading.level, dd))
        level = reading.level
    backs = [t for t in transitions if t[1] is Level.OK]
    assert all(dd < D("14") for _, _, dd in backs)
    assert len([t for t in transitions if t[1] is Level.WARNING]) <= len(backs) + 1


# --- the broker's trading day: rollover at a time in the server's zone ----------------------
def test_trading_day_starts_at_the_rollover_in_the_server_zone():
    # Etc/GMT-2 is UTC+2: 00:00 server time is 22:00 UTC the day before.
    now = _utc(2024, 5, 14, 21, 59)  # 23:59 server time on the 14th
    assert trading_day_start(now=now, tz="Etc/GMT-2") == _utc(2024, 5, 13, 22)
    now = _utc(2024, 5, 14, 22, 0)  # 00:00 on the 15th: a new day
    assert trading_day_start(now=now, tz="Etc/GMT-2") == _utc(2024, 5, 14, 22)
    # a broker rolling at 17:00 New York (EDT, UTC−4 in May): 21:00 UTC
    from datetime import time

    assert trading_day_start(now=_utc(2024, 5, 14, 20, 59), tz="America/New_York",
                             rollover=time(17)) == _utc(2024, 5, 13, 21)
    assert trading_day_start(now=_utc(2024, 5, 14, 21, 0), tz="America/New_York",
                             rollover=time(17)) == _utc(2024, 5, 14, 21)
