"""Position sizing against hand-computed figures, plus properties over random setups.

Every expected figure is worked out in the comment beside it from MetaTrader 5's documented
formulas, not from the code:

- loss at the stop in the account currency = |entry − stop| / tick_size × tick_value × lots
  (MetaTrader 5 Help, "Margin and profit calculation"; SYMBOL_TRADE_TICK_VALUE, the value of
  one SYMBOL_TRADE_TICK_SIZE move of 1 lot in the account currency, as order_calc_profit
  uses it), with the *loss* tick value when the broker reports one
  (SYMBOL_TRADE_TICK_VALUE_LOSS: the tick converted at the rate less favourable to a losing
  position; SYMBOL_TRADE_TICK_VALUE is the profit one, SYMBOL_TRADE_TICK_VALUE_PROFIT);
- forex margin of 1 lot = contract_size / leverage in the base currency, converted to the
  account currency (what order_calc_margin returns for 1 lot);
- budget = balance × risk % / 100 × split / 100, rounded DOWN to the cent; volume = budget /
  loss per lot, rounded DOWN to the volume step; margin = volume × margin per lot (2 dp, half
  up); available margin = free margin × (1 − buffer / 100).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.gateway import SymbolSpec
from positions import pnl
from risk.sizing import (
    REJECTION_CODES,
    SizingInput,
    SizingResult,
    loss_per_lot,
    size_position,
    volume_for_budget,
)

# EURUSD in a USD account: 10,000 balance and free margin, 3 % risk split 50/35/15, buy at
# 1.10000 with the stop at 1.09500 (500 points), tick 0.00001 worth 100000 × 0.00001 = 1 USD,
# volumes 0.01 … 100 by 0.01, margin of 1 lot at 1:100 = 100000 × 1.10000 / 100 = 1,100 USD.
EURUSD_USD = SizingInput(
    balance=D("10000"), free_margin=D("10000"), risk_percent=D("3"),
    splits=(D("50"), D("35"), D("15")), margin_buffer_percent=D("20"), side="buy",
    entry_price=D("1.10000"), stop_loss=D("1.09500"), take_profit=D("1.11000"),
    tick_size=D("0.00001"), tick_value=D("1.00"), volume_min=D("0.01"),
    volume_step=D("0.01"), volume_max=D("100"), margin_per_lot=D("1100.00"),
)


def setup(**changes) -> SizingInput:
    return replace(EURUSD_USD, **changes)


def three(a: str, b: str, c: str) -> tuple[D, D, D]:
    return D(a), D(b), D(c)


# (id, input, allocated, per-entry budgets, loss per lot (2 dp), volumes, margins,
#  total margin, available margin, utilization %)
APPROVED_CASES = [
    pytest.param(
        # budget 10000 × 3 % = 300 → 150 / 105 / 45 USD; loss per lot 500 pts × 1 USD = 500
        # → 150/500 = 0.30, 105/500 = 0.21, 45/500 = 0.09 lots;
        # margins 0.30 × 1100 = 330, 0.21 × 1100 = 231, 0.09 × 1100 = 99 → 660 USD;
        # available 10000 × (1 − 0.20) = 8000; 660 / 8000 = 8.25 %
        EURUSD_USD,
        "300.00", three("150.00", "105.00", "45.00"), "500.00",
        three("0.30", "0.21", "0.09"), three("330.00", "231.00", "99.00"),
        "660.00", "8000.00", "8.25", id="eurusd-usd-account"),
    pytest.param(
        # USDJPY in a USD account: tick 0.001 of 1 lot = 100000 × 0.001 = 100 JPY
        # = 100 / 150 = 0.6666… USD at 150.000; stop 149.500 = 500 ticks
        # → loss per lot 500 × 0.6666… = 333.33 USD (= 50,000 JPY / 150);
        # 150 / 333.33… = 0.45 exactly; 105 / 333.33… = 0.315 → 0.31 (rounded down);
        # 45 / 333.33… = 0.135 → 0.13 (rounded down);
        # margin of 1 lot at 1:30 = 100000 / 30 = 3,333.33 USD (USD is the base):
        # 0.45 × 3333.33 = 1499.9985 → 1500.00, 0.31 × 3333.33 = 1033.3323 → 1033.33,
        # 0.13 × 3333.33 = 433.3329 → 433.33; total 2966.66; 2966.66 / 8000 = 37.08325 %
        setup(entry_price=D("150.000"), stop_loss=D("149.500"), take_profit=None,
              tick_size=D("0.001"), tick_value=D("100000") * D("0.001") / D("150"),
              margin_per_lot=D("3333.33")),
        "300.00", three("150.00", "105.00", "45.00"), "333.33",
        three("0.45", "0.31", "0.13"), three("1500.00", "1033.33", "433.33"),
        "2966.66", "8000.00", "37.08", id="usdjpy-usd-account"),
    pytest.param(
        # EURUSD in a GBP account, GBPUSD 1.25: tick worth 1 USD / 1.25 = 0.80 GBP;
        # loss per lot 500 × 0.80 = 400 GBP; 150/400 = 0.375 → 0.37, 105/400 = 0.2625
        # → 0.26, 45/400 = 0.1125 → 0.11; margin of 1 lot at 1:100 = 1000 EUR × EURGBP
        # (1.10000 / 1.25 = 0.88) = 880 GBP: 325.60 + 228.80 + 96.80 = 651.20;
        # 651.20 / 8000 = 8.14 %
        setup(tick_value=D("1") / D("1.25"), margin_per_lot=D("1000") * D("1.10000") / D("1.25")),
        "300.00", three("150.00", "105.00", "45.00"), "400.00",
        three("0.37", "0.26", "0.11"), three("325.60", "228.80", "96.80"),
        "651.20", "8000.00", "8.14", id="eurusd-gbp-account"),
    pytest.param(
        # XAUUSD, contract 100 oz: tick 0.01 worth 100 × 0.01 = 1.00 USD; 1900.00 → 1890.00
        # = 1000 ticks → 1,000 USD per lot; 150/1000 = 0.15, 105/1000 = 0.105 → 0.10,
        # 45/1000 = 0.045 → 0.04; margin of 1 lot at 1:100 = 100 × 1900 / 100 = 1,900 USD:
        # 285 + 190 + 76 = 551; 551 / 8000 = 6.8875 → 6.89 %
        setup(entry_price=D("1900.00"), stop_loss=D("1890.00"), take_profit=D("1950.00"),
              tick_size=D("0.01"), tick_value=D("1.00"), margin_per_lot=D("1900.00")),
        "300.00", three("150.00", "105.00", "45.00"), "1000.00",
        three("0.15", "0.10", "0.04"), three("285.00", "190.00", "76.00"),
        "551.00", "8000.00", "6.89", id="xauusd-usd-account"),
    pytest.param(
        # rounding down: 14,995 × 1 % = 149.95, all on entry 1 (splits 100/0/0);
        # 149.95 / 500 = 0.2999 → 0.29 (never 0.30: 0.30 × 500 = 150 > 149.95);
        # zero splits give 0 lots; margin 0.29 × 1100 = 319; 319 / 8000 = 3.9875 → 3.99 %
        setup(balance=D("14995"), risk_percent=D("1"), splits=three("100", "0", "0")),
        "149.95", three("149.95", "0.00", "0.00"), "500.00",
        three("0.29", "0.00", "0.00"), three("319.00", "0.00", "0.00"),
        "319.00", "8000.00", "3.99", id="round-down-0.2999-and-zero-splits"),
    pytest.param(
        # budgets rounded down to the cent: 9,998 × 3 % = 299.94 → 149.97 / 104.979 → 104.97
        # / 44.991 → 44.99; volumes 0.29994 → 0.29, 0.20994 → 0.20, 0.08998 → 0.08;
        # margins 319 + 220 + 88 = 627; 627 / 8000 = 7.8375 → 7.84 %
        setup(balance=D("9998")),
        "299.94", three("149.97", "104.97", "44.99"), "500.00",
        three("0.29", "0.20", "0.08"), three("319.00", "220.00", "88.00"),
        "627.00", "8000.00", "7.84", id="budgets-rounded-down"),
    pytest.param(
        # clamp: 1,000,000 × 10 % = 100,000 on entry 1; 100000 / 500 = 200 lots → max 100;
        # margin 100 × 1100 = 110,000; available 1,000,000 × 0.8 = 800,000 → 13.75 %
        setup(balance=D("1000000"), free_margin=D("1000000"), risk_percent=D("10"),
              splits=three("100", "0", "0")),
        "100000.00", three("100000.00", "0.00", "0.00"), "500.00",
        three("100.00", "0.00", "0.00"), three("110000.00", "0.00", "0.00"),
        "110000.00", "800000.00", "13.75", id="clamped-to-volume-max"),
    pytest.param(
        # clamp to a volume_max off the step grid: 50.005 → 50.00 (the largest multiple of
        # 0.01 not above it); 50 × 1100 = 55,000; 55000 / 800000 = 6.875 → 6.88 %
        setup(balance=D("1000000"), free_margin=D("1000000"), risk_percent=D("10"),
              splits=three("100", "0", "0"), volume_max=D("50.005")),
        "100000.00", three("100000.00", "0.00", "0.00"), "500.00",
        three("50.00", "0.00", "0.00"), three("55000.00", "0.00", "0.00"),
        "55000.00", "800000.00", "6.88", id="clamped-to-volume-max-off-step"),
    pytest.param(
        # EURUSD sell at 1.10000, stop 1.10500 (500 points above), tp 1.09000: same figures
        # as the buy: 0.30 / 0.21 / 0.09 lots, 660 USD of margin
        setup(side="sell", stop_loss=D("1.10500"), take_profit=D("1.09000")),
        "300.00", three("150.00", "105.00", "45.00"), "500.00",
        three("0.30", "0.21", "0.09"), three("330.00", "231.00", "99.00"),
        "660.00", "8000.00", "8.25", id="eurusd-sell"),
    pytest.param(
        # XAUUSD sell at 1900.00, stop 1905.00 = 500 ticks × 1.00 = 500 USD per lot;
        # 5,000 × 2 % = 100 split 60/40/0 → 60 / 40 / 0 → 0.12 / 0.08 / 0 lots;
        # margins 0.12 × 1900 = 228, 0.08 × 1900 = 152 → 380; available 5000 × 0.8 = 4000
        # → 9.50 %
        setup(side="sell", balance=D("5000"), free_margin=D("5000"), risk_percent=D("2"),
              splits=three("60", "40", "0"), entry_price=D("1900.00"),
              stop_loss=D("1905.00"), take_profit=D("1880.00"), tick_size=D("0.01"),
              tick_value=D("1.00"), margin_per_lot=D("1900.00")),
        "100.00", three("60.00", "40.00", "0.00"), "500.00",
        three("0.12", "0.08", "0.00"), three("228.00", "152.00", "0.00"),
        "380.00", "4000.00", "9.50", id="xauusd-sell-zero-split"),
    pytest.param(
        # lowest risk 0.1 %: 100,000 × 0.1 % = 100 → 50 / 35 / 15 → 0.10 / 0.07 / 0.03;
        # margins 110 + 77 + 33 = 220; 220 / 8000 = 2.75 %
        setup(balance=D("100000"), risk_percent=D("0.1")),
        "100.00", three("50.00", "35.00", "15.00"), "500.00",
        three("0.10", "0.07", "0.03"), three("110.00", "77.00", "33.00"),
        "220.00", "8000.00", "2.75", id="risk-0.1-accepted"),
    pytest.param(
        # highest risk 50 %: 10,000 × 50 % = 5000 → 2500 / 1750 / 750 → 5 / 3.5 / 1.5 lots;
        # margins 5500 + 3850 + 1650 = 11,000; free 100,000 × 0.8 = 80,000 → 13.75 %
        setup(risk_percent=D("50"), free_margin=D("100000")),
        "5000.00", three("2500.00", "1750.00", "750.00"), "500.00",
        three("5.00", "3.50", "1.50"), three("5500.00", "3850.00", "1650.00"),
        "11000.00", "80000.00", "13.75", id="risk-50-accepted"),
    pytest.param(
        # margin exactly at the limit: 825 × 0.8 = 660.00 = the 660 needed → 100.00 %
        setup(free_margin=D("825")),
        "300.00", three("150.00", "105.00", "45.00"), "500.00",
        three("0.30", "0.21", "0.09"), three("330.00", "231.00", "99.00"),
        "660.00", "660.00", "100.00", id="margin-exactly-available"),
    pytest.param(
        # no buffer: all 700 of free margin usable; 660 / 700 = 94.2857… → 94.29 %
        setup(free_margin=D("700"), margin_buffer_percent=D("0")),
        "300.00", three("150.00", "105.00", "45.00"), "500.00",
        three("0.30", "0.21", "0.09"), three("330.00", "231.00", "99.00"),
        "660.00", "700.00", "94.29", id="no-margin-buffer"),
]


@pytest.mark.parametrize(
    ("inp", "allocated", "budgets", "per_lot", "volumes", "margins", "total_margin",
     "available", "utilization"),
    APPROVED_CASES,
)
def test_approved_setups(inp, allocated, budgets, per_lot, volumes, margins, total_margin,
                         available, utilization):
    got = size_position(inp)
    assert got.setup_approved is True
    assert got.rejection_reason is None
    assert got.rejection_detail == ""
    assert got.global_risk_percent == inp.risk_percent
    assert got.allocated_risk_amount == D(allocated)
    assert got.risk_amount_entries == budgets
    assert pnl.money(got.loss_per_lot) == D(per_lot)
    assert got.volume_entries == volumes
    # written with the step's places (0.30, not 0.3)
    assert all(v.as_tuple().exponent == -2 for v in got.volume_entries)
    assert got.total_volume == sum(volumes)
    assert got.estimated_margin_entries == margins
    assert got.total_estimated_margin == D(total_margin)
    assert got.available_margin == D(available)
    assert got.margin_utilization_percent == D(utilization)


def test_exact_decimal_places_of_money_fields():
    got = size_position(EURUSD_USD)
    for amount in (got.allocated_risk_amount, *got.risk_amount_entries,
                   *got.estimated_margin_entries, got.total_estimated_margin,
                   got.available_margin, got.margin_utilization_percent):
        assert amount.as_tuple().exponent == -2, amount


def test_loss_per_lot_is_order_calc_profit_for_one_lot():
    # the sizing's loss per lot is the loss of pnl.profit_by_tick_value (order_calc_profit)
    # for 1 lot from entry to stop: 500 × 1 = 500 USD
    per_lot = loss_per_lot(entry_price=D("1.10000"), stop_loss=D("1.09500"),
                           tick_size=D("0.00001"), tick_value=D("1"))
    assert per_lot == -pnl.profit_by_tick_value(
        side="buy", volume=D("1"), price_open=D("1.10000"), price_close=D("1.09500"),
        tick_size=D("0.00001"), tick_value=D("1"))
    assert per_lot == D("500")


# --- the loss tick value (issue 10) ---
# USDJPY in a USD account: contract 100,000, tick 0.001, so one tick of 1 lot is 100 JPY.
# In USD that is 100 / USDJPY, and the two directions convert at different sides of the
# quote (MetaTrader 5: SYMBOL_TRADE_TICK_VALUE_PROFIT / _LOSS, each at the rate less
# favourable to the trader):
#   profit tick value = 100 JPY / ask USD (= SYMBOL_TRADE_TICK_VALUE, what sizing used),
#   loss tick value   = 100 JPY / bid USD (more USD per tick: bid < ask).
# Budget: 5,000 × 3 % = 150.00 USD, all on entry 1 (splits 100/0/0). Buy at the ask 150.000.
# (id, bid, stop, volume sized by the profit tick value, its loss at the stop by the loss
#  tick value, volume sized by the loss tick value, its loss at the stop)
LOSS_TICK_VALUE_CASES = [
    # one-pip spread, bid 149.990: stop 149.500 = 50 pips = 500 ticks
    # profit: 500 × 100 / 150.000 = 333.333… USD per lot → 150 / 333.33… = 0.45 lots exactly
    # loss at the stop of 0.45 lots: 0.45 × 500 × 100 / 149.990 = 22,500 / 149.99
    #   = 150.0100… → 150.01 USD, a cent over the 150.00 budget
    # fixed: 500 × 100 / 149.990 = 333.3556 USD per lot → 150 / 333.3556 = 0.44997 → 0.44;
    #   0.44 × 333.3556 = 146.6764… → 146.68 USD
    pytest.param(D("149.990"), D("149.500"), "0.45", "150.01", "0.44", "146.68",
                 id="usdjpy-1-pip-spread"),
    # a rollover spread of 50 pips, bid 149.500: stop 149.100 = 90 pips = 900 ticks
    # profit: 900 × 100 / 150.000 = 600.00 USD per lot → 150 / 600 = 0.25 lots
    # loss at the stop of 0.25 lots: 0.25 × 900 × 100 / 149.500 = 22,500 / 149.5
    #   = 150.5016… → 150.50 USD on a 150.00 budget (the figure in issue 10)
    # fixed: 90,000 / 149.5 = 602.0067 USD per lot → 150 / 602.0067 = 0.24917 → 0.24;
    #   0.24 × 602.0067 = 144.4816… → 144.48 USD
    pytest.param(D("149.500"), D("149.100"), "0.25", "150.50", "0.24", "144.48",
                 id="usdjpy-rollover-spread"),
]
JPY_PER_TICK = D("100000") * D("0.001")  # contract × tick size = 100 JPY per lot-tick
USDJPY_ASK = D("150.000")


def usdjpy(bid: D, stop: D) -> SizingInput:
    return setup(balance=D("5000"), splits=three("100", "0", "0"),
                 entry_price=USDJPY_ASK, stop_loss=stop, take_profit=None,
                 tick_size=D("0.001"), tick_value=JPY_PER_TICK / USDJPY_ASK,
                 tick_value_loss=JPY_PER_TICK / bid, margin_per_lot=D("3333.33"))


def loss_at_stop(inp: SizingInput, volume: D, tick_value: D) -> D:
    """Loss of ``volume`` lots at the stop, in the account currency (order_calc_profit)."""
    return -pnl.profit_by_tick_value(side=inp.side, volume=volume, price_open=inp.entry_price,
                                     price_close=inp.stop_loss, tick_size=inp.tick_size,
                                     tick_value=tick_value)


@pytest.mark.parametrize(("bid", "stop", "old_volume", "old_loss", "volume", "loss"),
                         LOSS_TICK_VALUE_CASES)
def test_sizing_by_the_profit_tick_value_loses_more_than_the_budget(bid, stop, old_volume,
                                                                    old_loss, volume, loss):
    # what sizing did before: the reported (profit) tick value only
    inp = usdjpy(bid, stop)
    got = size_position(replace(inp, tick_value_loss=None))
    assert got.volume_entries[0] == D(old_volume)
    real_loss = pnl.money(loss_at_stop(inp, got.volume_entries[0], JPY_PER_TICK / bid))
    assert real_loss == D(old_loss)
    assert real_loss > got.risk_amount_entries[0] == D("150.00")


@pytest.mark.parametrize(("bid", "stop", "old_volume", "old_loss", "volume", "loss"),
                         LOSS_TICK_VALUE_CASES)
def test_sizing_uses_the_loss_tick_value(bid, stop, old_volume, old_loss, volume, loss):
    inp = usdjpy(bid, stop)
    got = size_position(inp)
    assert got.setup_approved is True
    assert got.volume_entries == (D(volume), D("0.00"), D("0.00"))
    real_loss = pnl.money(loss_at_stop(inp, got.volume_entries[0], JPY_PER_TICK / bid))
    assert real_loss == D(loss)
    assert real_loss <= got.risk_amount_entries[0] == D("150.00")
    assert got.loss_per_lot == loss_at_stop(inp, D(1), JPY_PER_TICK / bid)
    # the figure used, and where it came from, for the log and the answer
    assert got.tick_value_used == JPY_PER_TICK / bid
    assert got.tick_value_source == "tick_value_loss"


@pytest.mark.parametrize(("tick_value_loss", "used", "source"), [
    (None, D("1.00"), "tick_value"),  # not reported: the tick value
    (D("0"), D("1.00"), "tick_value"),  # MetaTrader 5 reports 0.0 for a figure it lacks
    (D("1.02"), D("1.02"), "tick_value_loss"),
])
def test_tick_value_used_follows_the_gateway_rule(tick_value_loss, used, source):
    # one rule with brokers.gateway.SymbolSpec.loss_tick_value: they must not drift apart
    spec = SymbolSpec(
        symbol="EURUSD", digits=5, point=D("0.00001"), contract_size=D("100000"),
        tick_size=D("0.00001"), tick_value=D("1.00"), volume_min=D("0.01"),
        volume_step=D("0.01"), volume_max=D("100"), currency_base="EUR",
        currency_profit="USD", currency_margin="EUR", filling_modes=frozenset({"fok"}),
        calc_mode="forex", tick_value_loss=tick_value_loss)
    inp = setup(tick_value_loss=tick_value_loss)
    got = size_position(inp)
    assert inp.loss_tick_value == spec.loss_tick_value == used
    assert (got.tick_value_used, got.tick_value_source) == (used, source)
    # 500 points × the tick value used
    assert got.loss_per_lot == 500 * used


def test_a_negative_loss_tick_value_is_an_unusable_spec():
    got = size_position(setup(tick_value_loss=D("-1")))
    assert got.rejection_reason == "invalid_symbol_spec"
    assert "tick_value_loss -1" in got.rejection_detail


# --- rejections: (id, input, code, words expected in the detail) ---
REJECTED_CASES = [
    # balance
    pytest.param(setup(balance=D("0")), "balance_not_positive", ["0"], id="balance-0"),
    pytest.param(setup(balance=D("-0.01")), "balance_not_positive", ["-0.01"],
                 id="balance-negative"),
    # risk %: 0.1 … 50 inclusive
    pytest.param(setup(risk_percent=D("0.09")), "invalid_risk_percent", ["0.09"],
                 id="risk-0.09"),
    pytest.param(setup(risk_percent=D("50.01")), "invalid_risk_percent", ["50.01"],
                 id="risk-50.01"),
    pytest.param(setup(risk_percent=D("0")), "invalid_risk_percent", [], id="risk-0"),
    pytest.param(setup(risk_percent=D("-3")), "invalid_risk_percent", [], id="risk-negative"),
    # splits
    pytest.param(setup(splits=three("50", "35", "14")), "invalid_splits", ["99"],
                 id="splits-sum-99"),
    pytest.param(setup(splits=three("50", "50", "0.01")), "invalid_splits", ["100.01"],
                 id="splits-sum-100.01"),
    pytest.param(setup(splits=three("60", "50", "-10")), "invalid_splits", ["-10"],
                 id="splits-negative"),
    # prices
    pytest.param(setup(stop_loss=D("1.10000")), "stop_equals_entry", ["1.10000"],
                 id="stop-equals-entry"),
    pytest.param(setup(stop_loss=D("1.10500")), "stop_wrong_side", ["below", "1.10500"],
                 id="buy-stop-above-entry"),
    pytest.param(setup(side="sell", stop_loss=D("1.09500"), take_profit=D("1.09000")),
                 "stop_wrong_side", ["above", "1.09500"], id="sell-stop-below-entry"),
    pytest.param(setup(take_profit=D("1.09000")), "take_profit_wrong_side",
                 ["above", "1.09000"], id="buy-tp-below-entry"),
    pytest.param(setup(take_profit=D("1.10000")), "take_profit_wrong_side", ["above"],
                 id="buy-tp-at-entry"),
    pytest.param(setup(side="sell", stop_loss=D("1.10500"), take_profit=D("1.11000")),
                 "take_profit_wrong_side", ["below", "1.11000"], id="sell-tp-above-entry"),
    # symbol specification
    *[pytest.param(setup(**{field: value}), "invalid_symbol_spec", [field],
                   id=f"spec-{field}-{value}")
      for field in ("tick_size", "tick_value", "volume_step", "volume_min", "volume_max",
                    "margin_per_lot")
      for value in (D("0"), D("-1"))],
    pytest.param(setup(volume_min=D("1"), volume_max=D("0.5")), "invalid_symbol_spec",
                 ["volume_min", "volume_max"], id="spec-min-above-max"),
    # minimum volume: 1,000 × 3 % = 30 → 15 / 10.50 / 4.50 → 0.03 / 0.021 → 0.02 /
    # 0.009 → 0.00 < 0.01: entry 3 is below the minimum, never rounded up to 0.01
    pytest.param(setup(balance=D("1000")), "volume_below_minimum",
                 ["entry 3", "4.50", "0.009", "0.01"], id="min-volume-entry-3"),
    # 100 × 1 % = 1 → 0.50 / 0.35 / 0.15 → 0.001 / 0.0007 / 0.0003 lots: all three
    pytest.param(setup(balance=D("100"), risk_percent=D("1")), "volume_below_minimum",
                 ["entry 1", "entry 2", "entry 3"], id="min-volume-all-entries"),
    # minimum 0.05: 15/500 = 0.03 < 0.05 (entry 1); 0.02 and 0.00 too
    pytest.param(setup(balance=D("1000"), volume_min=D("0.05")), "volume_below_minimum",
                 ["entry 1", "0.05"], id="min-volume-above-step"),
    # margin: 660 needed; 800 × 0.8 = 640 available
    pytest.param(setup(free_margin=D("800")), "insufficient_margin", ["660.00", "640.00"],
                 id="margin-640-of-660"),
    # 824.99 × 0.8 = 659.992 → 659.99 < 660.00: a cent short
    pytest.param(setup(free_margin=D("824.99")), "insufficient_margin", ["659.99"],
                 id="margin-a-cent-short"),
    # negative free margin (equity below the used margin): nothing is available
    pytest.param(setup(free_margin=D("-50")), "insufficient_margin", ["-40.00"],
                 id="margin-free-negative"),
    # 100 % buffer: nothing may be used
    pytest.param(setup(margin_buffer_percent=D("100")), "insufficient_margin", ["0.00"],
                 id="margin-buffer-100"),
]


@pytest.mark.parametrize(("inp", "code", "words"), REJECTED_CASES)
def test_rejections(inp, code, words):
    got = size_position(inp)
    assert got.setup_approved is False
    assert got.rejection_reason == code
    assert code in REJECTION_CODES
    assert got.rejection_detail.endswith(".")
    for word in words:
        assert word in got.rejection_detail
    # nothing may be sent: no volume, no margin
    assert got.volume_entries == (0, 0, 0)
    assert got.total_volume == 0
    assert got.estimated_margin_entries == three("0.00", "0.00", "0.00")
    assert got.total_estimated_margin == D("0.00")
    assert got.global_risk_percent == inp.risk_percent


def test_min_volume_rejection_names_only_the_failing_entry():
    got = size_position(setup(balance=D("1000")))
    assert "entry 1" not in got.rejection_detail
    assert "entry 2" not in got.rejection_detail


# --- order of the checks: each setup has two faults; the earlier one is reported ---
ORDER_CASES = [
    (setup(balance=D("0"), risk_percent=D("0.09")), "balance_not_positive"),
    (setup(risk_percent=D("51"), splits=three("1", "1", "1")), "invalid_risk_percent"),
    (setup(splits=three("1", "1", "1"), stop_loss=D("1.10000")), "invalid_splits"),
    (setup(stop_loss=D("1.10000"), take_profit=D("1.0")), "stop_equals_entry"),
    (setup(stop_loss=D("1.2"), take_profit=D("1.0")), "stop_wrong_side"),
    (setup(take_profit=D("1.0"), tick_size=D("0")), "take_profit_wrong_side"),
    (setup(balance=D("100"), volume_step=D("0")), "invalid_symbol_spec"),
    (setup(balance=D("1000"), free_margin=D("0")), "volume_below_minimum"),
]


@pytest.mark.parametrize(("inp", "code"), ORDER_CASES)
def test_rejection_order(inp, code):
    assert size_position(inp).rejection_reason == code


# --- a rejected result carries the figures computed before the rejection ---
def test_rejected_result_before_the_risk_is_known():
    got = size_position(setup(risk_percent=D("0.09")))
    assert got.allocated_risk_amount == D("0.00")
    assert got.risk_amount_entries == three("0.00", "0.00", "0.00")
    assert got.loss_per_lot == 0
    assert got.available_margin == D("8000.00")  # 10000 × 0.8, always meaningful
    assert got.margin_utilization_percent == D("0.00")


def test_rejected_result_with_bad_splits_carries_the_budget():
    got = size_position(setup(splits=three("50", "35", "14")))
    assert got.allocated_risk_amount == D("300.00")  # 10000 × 3 %
    assert got.risk_amount_entries == three("0.00", "0.00", "0.00")
    assert got.loss_per_lot == 0


def test_rejected_result_with_bad_stop_carries_the_entry_budgets():
    got = size_position(setup(stop_loss=D("1.10500")))
    assert got.allocated_risk_amount == D("300.00")
    assert got.risk_amount_entries == three("150.00", "105.00", "45.00")
    assert got.loss_per_lot == 0  # not computed: the stop is on the wrong side


def test_rejected_result_for_margin_carries_loss_per_lot_and_figures_in_detail():
    got = size_position(setup(free_margin=D("800")))
    assert got.risk_amount_entries == three("150.00", "105.00", "45.00")
    assert got.loss_per_lot == D("500")
    assert got.available_margin == D("640.00")
    assert got.margin_utilization_percent == D("0.00")  # no margin is used: nothing sent
    assert "0.30 / 0.21 / 0.09 lots" in got.rejection_detail


def test_no_available_margin_has_no_utilization():
    assert size_position(setup(free_margin=D("-50"))).margin_utilization_percent is None
    assert size_position(setup(margin_buffer_percent=D("100"))).margin_utilization_percent \
        is None


def test_rejected_result_is_a_full_sizing_result():
    got = size_position(setup(balance=D("0")))
    assert isinstance(got, SizingResult)
    assert got.allocated_risk_amount == D("0.00")
    assert got.available_margin == D("8000.00")


@pytest.mark.parametrize("changes", [
    {"side": "long"},
    {"margin_buffer_percent": D("-1")},
    {"margin_buffer_percent": D("100.01")},
])
def test_programming_errors_raise(changes):
    with pytest.raises(ValueError, match=r"side|margin_buffer_percent"):
        size_position(setup(**changes))


# --- volume_for_budget on its own ---
@pytest.mark.parametrize(("budget", "per_lot", "step", "vmax", "expected"), [
    (D("150"), D("500"), D("0.01"), D("100"), D("0.30")),  # 0.3 exactly
    (D("149.95"), D("500"), D("0.01"), D("100"), D("0.29")),  # 0.2999 → 0.29
    (D("150"), D("500"), D("0.1"), D("100"), D("0.3")),  # step 0.1
    (D("150"), D("500"), D("1"), D("100"), D("0")),  # 0.3 → 0 whole lots
    (D("100000"), D("500"), D("0.01"), D("100"), D("100")),  # 200 → clamped to 100
    # 150 / (500 × 0.6666…67) lands a hair under 0.45 through 28-digit rounding;
    # 0.45 × 333.33…34 = 150 at that precision: 0.45, not 0.44
    (D("150"), 500 * (D("100") / D("150")), D("0.01"), D("100"), D("0.45")),
    # 150 / (500 × 0.66667) = 0.449998… → 0.44 (the tick value really is above 2/3 here)
    (D("150"), 500 * D("0.66667"), D("0.01"), D("100"), D("0.44")),
])
def test_volume_for_budget(budget, per_lot, step, vmax, expected):
    assert volume_for_budget(budget=budget, loss_per_lot=per_lot, volume_step=step,
                             volume_max=vmax) == expected


# --- properties over random valid setups ---
@st.composite
def tick_values(draw, tick_size: D) -> D:
    """Either a plain decimal, or contract × tick / rate as a broker converts it (28 digits)."""
    if draw(st.booleans()):
        return draw(st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=6))
    contract = draw(st.sampled_from([D("1"), D("100"), D("1000"), D("100000")]))
    rate = draw(st.decimals(min_value=D("0.5"), max_value=D("200"), places=5))
    return contract * tick_size / rate


@st.composite
def loss_tick_values(draw, tick_value: D) -> D | None:
    """Not reported (None or 0), the profit tick value converted at a worse rate (up to 5 %
    more, a wide spread or a cross rate), or any positive figure."""
    return draw(st.one_of(
        st.none(), st.just(D(0)),
        st.decimals(min_value=D("1"), max_value=D("1.05"), places=6).map(
            lambda worse: tick_value * worse),
        st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=6)))


@st.composite
def sizing_inputs(draw, *, free_margin: D | None = None) -> SizingInput:
    side = draw(st.sampled_from(["buy", "sell"]))
    direction = 1 if side == "buy" else -1
    tick_size = draw(st.sampled_from([D("0.00001"), D("0.001"), D("0.01"), D("0.25"), D("1")]))
    entry_ticks = draw(st.integers(min_value=100_000, max_value=10_000_000))
    stop_ticks = draw(st.integers(min_value=1, max_value=99_999))
    entry = entry_ticks * tick_size
    take_profit = draw(st.one_of(
        st.none(),
        st.integers(min_value=1, max_value=100_000).map(
            lambda t: entry + direction * t * tick_size)))
    step = draw(st.sampled_from([D("0.001"), D("0.01"), D("0.1"), D("1")]))
    # usually one step (as most brokers set it), sometimes more
    volume_min = step * draw(st.one_of(st.just(1), st.integers(min_value=1, max_value=100)))
    volume_max = volume_min + draw(st.decimals(min_value=D("0"), max_value=D("10000"),
                                               places=3))
    a = draw(st.integers(min_value=0, max_value=10_000))
    b = draw(st.integers(min_value=0, max_value=10_000 - a))
    splits = (D(a) / 100, D(b) / 100, D(10_000 - a - b) / 100)
    if free_margin is None:
        free_margin = draw(st.one_of(
            st.decimals(min_value=D("-1000"), max_value=D("100000"), places=2),
            st.decimals(min_value=D("100000"), max_value=D("1000000000000"), places=2)))
    tick_value = draw(tick_values(tick_size))
    return SizingInput(
        balance=draw(st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2)),
        free_margin=free_margin,
        risk_percent=draw(st.decimals(min_value=D("0.1"), max_value=D("50"), places=2)),
        splits=splits,
        margin_buffer_percent=draw(st.decimals(min_value=D("0"), max_value=D("100"),
                                               places=2)),
        side=side, entry_price=entry, stop_loss=entry - direction * stop_ticks * tick_size,
        take_profit=take_profit, tick_size=tick_size,
        tick_value=tick_value, tick_value_loss=draw(loss_tick_values(tick_value)),
        volume_min=volume_min, volume_step=step, volume_max=volume_max,
        margin_per_lot=draw(st.decimals(min_value=D("0.01"), max_value=D("200000"),
                                        places=2)),
    )


def realized_loss(inp: SizingInput, volume: D) -> D:
    """Loss at the stop of ``volume`` lots, in the account currency (order_calc_profit),
    by the loss tick value when the broker reports one: what a losing position is charged."""
    return loss_at_stop(inp, volume, inp.tick_value_loss or inp.tick_value)


@settings(max_examples=400, deadline=None)
@given(inp=sizing_inputs())
def test_property_realized_loss_never_exceeds_the_budget(inp):
    got = size_position(inp)
    assert got.rejection_reason in (None, "volume_below_minimum", "insufficient_margin")
    losses = [realized_loss(inp, v) for v in got.volume_entries]
    for loss, budget in zip(losses, got.risk_amount_entries, strict=True):
        assert loss <= budget
    assert sum(losses) <= got.allocated_risk_amount
    assert sum(got.risk_amount_entries) <= got.allocated_risk_amount
    assert got.allocated_risk_amount <= inp.balance * inp.risk_percent / 100
    # and the would-be volumes (what a rejection withholds) keep the budget too
    for budget, split in zip(got.risk_amount_entries, inp.splits, strict=True):
        if split > 0:
            v = volume_for_budget(budget=budget, loss_per_lot=got.loss_per_lot,
                                  volume_step=inp.volume_step, volume_max=inp.volume_max)
            assert realized_loss(inp, v) <= budget


@settings(max_examples=400, deadline=None)
@given(inp=sizing_inputs())
def test_property_volumes_on_the_step_grid_within_the_maximum(inp):
    got = size_position(inp)
    for v, split in zip(got.volume_entries, inp.splits, strict=True):
        assert v % inp.volume_step == 0
        assert 0 <= v <= inp.volume_max
        if got.setup_approved and split > 0:
            assert v >= inp.volume_min
        if split == 0:
            assert v == 0


@settings(max_examples=400, deadline=None)
@given(inp=sizing_inputs())
def test_property_rounding_is_down_to_the_nearest_step(inp):
    # one more step would break the budget, unless the volume is already at the maximum
    got = size_position(inp)
    for budget, split in zip(got.risk_amount_entries, inp.splits, strict=True):
        if split == 0:
            continue
        v = volume_for_budget(budget=budget, loss_per_lot=got.loss_per_lot,
                              volume_step=inp.volume_step, volume_max=inp.volume_max)
        if v + inp.volume_step <= inp.volume_max:
            assert realized_loss(inp, v + inp.volume_step) > budget


@settings(max_examples=400, deadline=None)
@given(inp=sizing_inputs())
def test_property_approved_margin_fits_the_available_margin(inp):
    got = size_position(inp)
    assert got.total_estimated_margin == sum(got.estimated_margin_entries)
    if got.setup_approved:
        assert got.total_estimated_margin <= got.available_margin
        assert got.total_estimated_margin <= inp.free_margin * (1 - inp.margin_buffer_percent
                                                                / 100) + D("0.005")
    if got.rejection_reason == "insufficient_margin":
        would_be = sum(pnl.money(v * inp.margin_per_lot) for v in (
            volume_for_budget(budget=b, loss_per_lot=got.loss_per_lot,
                              volume_step=inp.volume_step, volume_max=inp.volume_max)
            if s > 0 else D(0)
            for b, s in zip(got.risk_amount_entries, inp.splits, strict=True)))
        assert would_be > got.available_margin


@settings(max_examples=400, deadline=None)
@given(inp=sizing_inputs(free_margin=D("1000000000000000")))
def test_property_doubling_the_balance_never_reduces_a_volume(inp):
    # with ample free margin, so that the doubled setup is not refused for margin
    got = size_position(inp)
    doubled = size_position(replace(inp, balance=inp.balance * 2))
    for v, v2 in zip(got.volume_entries, doubled.volume_entries, strict=True):
        assert v2 >= v
    if got.setup_approved:
        assert doubled.setup_approved
