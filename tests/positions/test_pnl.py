"""P&L, margin, margin level and drawdown against hand-computed figures.

Every expected figure is worked out in the comment beside it from MetaTrader 5's
documented formulas (MetaTrader 5 Help, "Margin and profit calculation"), not from the code.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from positions import pnl

# --- forex profit in the quote currency: (close − open) × contract size × lots ---
FOREX_PROFIT_CASES = [
    # EURUSD buy 1.00 lot 1.07219 → 1.07300: 0.00081 × 100000 × 1 = 81 USD
    ("buy", D("1.00"), D("1.07219"), D("1.07300"), D("100000"), D("81.00")),
    # EURUSD sell 0.50 lot 1.08930 → 1.08500: (1.08930 − 1.08500) × 100000 × 0.5 = 215 USD
    ("sell", D("0.50"), D("1.08930"), D("1.08500"), D("100000"), D("215.00")),
    # EURUSD sell 0.10 lot 1.07268 → gap open 1.08930: −0.01662 × 100000 × 0.1 = −166.20 USD
    ("sell", D("0.10"), D("1.07268"), D("1.08930"), D("100000"), D("-166.20")),
    # USDJPY buy 0.10 lot 110.250 → 110.750: 0.5 × 100000 × 0.1 = 5000 JPY
    ("buy", D("0.10"), D("110.250"), D("110.750"), D("100000"), D("5000.00")),
    # XAUUSD (contract 100 oz) buy 0.10 lot 1900.00 → 1910.50: 10.50 × 100 × 0.1 = 105 USD
    ("buy", D("0.10"), D("1900.00"), D("1910.50"), D("100"), D("105.00")),
    # XAUUSD sell 2 lots 1950.25 → 1948.00: 2.25 × 100 × 2 = 450 USD
    ("sell", D("2"), D("1950.25"), D("1948.00"), D("100"), D("450.00")),
]


@pytest.mark.parametrize(("side", "lots", "price_open", "price_close", "contract", "expected"),
                         FOREX_PROFIT_CASES)
def test_forex_profit_in_quote_currency(side, lots, price_open, price_close, contract, expected):
    got = pnl.forex_profit(side=side, volume=lots, price_open=price_open,
                           price_close=price_close, contract_size=contract)
    assert pnl.money(got) == expected


# --- profit by tick value, in the account currency (order_calc_profit) ---
TICK_VALUE_CASES = [
    # USD account, EURUSD: tick 0.00001 worth 100000 × 0.00001 = 1 USD per lot.
    # buy 1 lot 1.07219 → 1.07300 = 81 ticks × 1 × 1 = 81.00 USD
    ("buy", D("1"), D("1.07219"), D("1.07300"), D("0.00001"), D("1"), D("81.00")),
    # USD account, USDJPY at 110.750: tick 0.001 worth 100000 × 0.001 / 110.750
    # = 0.90293453725… USD per lot; buy 0.10 lot 110.250 → 110.750 = 500 ticks
    # → 500 × 0.90293453725 × 0.1 = 45.1467… → 45.15 USD (= 5000 JPY / 110.750)
    ("buy", D("0.10"), D("110.250"), D("110.750"), D("0.001"),
     D("100000") * D("0.001") / D("110.750"), D("45.15")),
    # GBP account, EURUSD, GBPUSD 1.25000: tick worth 1 USD / 1.25 = 0.80 GBP per lot.
    # buy 2 lots 1.10000 → 1.09500 = −500 ticks × 0.80 × 2 = −800.00 GBP
    # (= −1000 USD / 1.25)
    ("buy", D("2"), D("1.10000"), D("1.09500"), D("0.00001"), D("0.80"), D("-800.00")),
    # GBP account, USDJPY at 150.000, GBPUSD 1.25: tick worth 100 JPY / 150 / 1.25
    # = 0.5333… GBP per lot; sell 1 lot 150.000 → 149.000 = 1000 ticks → 533.33 GBP
    ("sell", D("1"), D("150.000"), D("149.000"), D("0.001"),
     D("100") / D("150") / D("1.25"), D("533.33")),
    # USD account, XAUUSD: tick 0.01 worth 100 × 0.01 = 1.00 USD per lot.
    # buy 0.10 lot 1900.00 → 1910.50 = 1050 ticks × 1.00 × 0.1 = 105.00 USD
    ("buy", D("0.10"), D("1900.00"), D("1910.50"), D("0.01"), D("1.00"), D("105.00")),
    # GBP account, XAUUSD: tick worth 1.00 USD / 1.25 = 0.80 GBP per lot;
    # sell 2 lots 1950.25 → 1948.00 = 225 ticks × 0.80 × 2 = 360.00 GBP (= 450 USD / 1.25)
    ("sell", D("2"), D("1950.25"), D("1948.00"), D("0.01"), D("0.80"), D("360.00")),
]


@pytest.mark.parametrize(
    ("side", "lots", "price_open", "price_close", "tick_size", "tick_value", "expected"),
    TICK_VALUE_CASES,
)
def test_profit_by_tick_value_in_account_currency(side, lots, price_open, price_close,
                                                  tick_size, tick_value, expected):
    got = pnl.profit_by_tick_value(side=side, volume=lots, price_open=price_open,
                                   price_close=price_close, tick_size=tick_size,
                                   tick_value=tick_value)
    assert pnl.money(got) == expected


# --- margin ---
def test_forex_margin_eurusd_usd_account():
    # 1 lot × 100000 / 100 = 1000 EUR; at EURUSD 1.07219 = 1072.19 USD
    eur = pnl.forex_margin(volume=D("1"), contract_size=D("100000"), leverage=100)
    assert eur == D("1000")
    assert pnl.money(eur * D("1.07219")) == D("1072.19")


def test_forex_margin_usdjpy_base_is_account_currency():
    # USDJPY margin is in USD (the base): 0.10 × 100000 / 30 = 333.333… → 333.33 USD
    got = pnl.forex_margin(volume=D("0.10"), contract_size=D("100000"), leverage=30)
    assert pnl.money(got) == D("333.33")


def test_forex_margin_gbp_account():
    # 1 lot EURUSD at 1:200 = 500 EUR; × 1.10000 = 550 USD; / GBPUSD 1.25 = 440.00 GBP
    eur = pnl.forex_margin(volume=D("1"), contract_size=D("100000"), leverage=200)
    assert pnl.money(eur * D("1.10000") / D("1.25")) == D("440.00")


def test_cfd_margin():
    # GOOG CFD: 10 lots × contract 1 × 800.00 × margin rate 0.1 = 800.00
    got = pnl.cfd_margin(volume=D("10"), contract_size=D("1"), price=D("800.00"),
                         margin_rate=D("0.1"))
    assert got == D("800.000")


def test_forex_margin_rejects_zero_leverage():
    with pytest.raises(ValueError, match="leverage"):
        pnl.forex_margin(volume=D("1"), contract_size=D("100000"), leverage=0)


# --- margin level and drawdown ---
@pytest.mark.parametrize(("equity", "margin", "expected"), [
    (D("10500"), D("1072.19"), D("979.30")),  # 10500 / 1072.19 × 100 = 979.3041…
    (D("500"), D("1000"), D("50.00")),  # the usual stop-out level
    (D("-20"), D("100"), D("-20.00")),  # negative equity after a gap
    (D("10000"), D("0"), None),  # flat: MetaTrader 5 shows no margin level
])
def test_margin_level(equity, margin, expected):
    assert pnl.margin_level(equity=equity, margin=margin) == expected


@pytest.mark.parametrize(("peak", "equity", "expected"), [
    (D("12000"), D("9000"), D("25.00")),  # 3000 / 12000 × 100
    (D("10000"), D("8499.99"), D("15.00")),  # 1500.01 / 10000 × 100 = 15.0001
    (D("10000"), D("10000"), D("0.00")),
    (D("10000"), D("10500"), D("0.00")),  # above the peak: no drawdown
    (D("0"), D("0"), D("0.00")),  # empty account
    (D("1000"), D("-50"), D("105.00")),  # 1050 / 1000 × 100: beyond a total loss
])
def test_drawdown_percent(peak, equity, expected):
    assert pnl.drawdown_percent(peak_equity=peak, equity=equity) == expected


def test_pnl_percent_of_entry_notional():
    # 81 USD on 1 lot at 1.07219 = 107219 USD notional → 0.0755…% → 0.08
    assert pnl.pnl_percent(pnl=D("81"), entry_notional=D("107219")) == D("0.08")
    assert pnl.pnl_percent(pnl=D("81"), entry_notional=D("0")) is None


def test_bad_side_is_refused():
    with pytest.raises(ValueError, match="side"):
        pnl.forex_profit(side="long", volume=D("1"), price_open=D("1"), price_close=D("2"),
                         contract_size=D("1"))  # type: ignore[arg-type]


# --- properties ---
prices = st.decimals(min_value=D("0.5"), max_value=D("2.0"), places=5)
lots = st.decimals(min_value=D("0.01"), max_value=D("100"), places=2)
equities = st.decimals(min_value=D("-1000"), max_value=D("1000000"), places=2)


@given(price_open=prices, price_close=prices, volume=lots)
def test_buy_and_sell_profits_are_opposite(price_open, price_close, volume):
    buy = pnl.forex_profit(side="buy", volume=volume, price_open=price_open,
                           price_close=price_close, contract_size=D("100000"))
    sell = pnl.forex_profit(side="sell", volume=volume, price_open=price_open,
                            price_close=price_close, contract_size=D("100000"))
    assert buy == -sell


@given(price_open=prices, price_close=prices, volume=lots)
def test_tick_value_and_contract_formulas_agree_for_usd_quoted_pairs(price_open, price_close,
                                                                     volume):
    # For EURUSD in a USD account tick_value = contract × tick_size, so both formulas agree.
    by_contract = pnl.forex_profit(side="buy", volume=volume, price_open=price_open,
                                   price_close=price_close, contract_size=D("100000"))
    by_tick = pnl.profit_by_tick_value(side="buy", volume=volume, price_open=price_open,
                                       price_close=price_close, tick_size=D("0.00001"),
                                       tick_value=D("1"))
    assert by_contract == by_tick


@given(st.lists(equities, min_size=1, max_size=50))
def test_high_water_mark_never_falls_and_drawdown_stays_in_range(series):
    peak = None
    for equity in series:
        new_peak = pnl.high_water_mark(previous_peak=peak, equity=equity)
        assert peak is None or new_peak >= peak
        assert new_peak >= equity
        peak = new_peak
        drawdown = pnl.drawdown_percent(peak_equity=peak, equity=equity)
        assert drawdown >= 0
        if peak > 0 and equity >= 0:
            assert drawdown <= 100


# --- realized P&L and close reason from deals: one function for sync and close paths -----
def _deal(ticket, entry, profit, *, kind=None, commission="0", swap="0", time_s=0,
          reason="client", price="1.08"):
    from datetime import UTC, datetime, timedelta

    from brokers.gateway import Deal, DealKind, DealReason

    return Deal(ticket=ticket, order=ticket, position_id=7, symbol="EURUSD", side=None,
                entry=entry, reason=DealReason(reason), volume=D("0.10"), price=D(price),
                profit=D(profit), swap=D(swap), commission=D(commission), fee=D(0),
                magic=0, comment="", kind=kind or DealKind.TRADE,
                time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=time_s))


def test_position_closing_sums_every_deal_rounding_half_up():
    # Net of all three deals: −0.0025 (in) + 10.00 − 0.0025 (first out) − 9.99 (SL out)
    # = 0.005 exactly: 0.01 rounded half up, as MetaTrader 5 shows money; banker's rounding
    # (the close path's old copy) gave 0.00.
    deals = [_deal(1, "in", "0", commission="-0.0025"),
             _deal(2, "out", "10.00", commission="-0.0025", time_s=60, price="1.09"),
             _deal(3, "out", "-9.99", time_s=120, reason="sl", price="1.07")]
    got = pnl.position_closing(deals)
    assert got is not None
    assert got.realized_pnl == D("0.01")  # −0.005 + 10.00 − 9.99 = 0.005 → 0.01
    assert (got.close_reason, got.close_price) == ("sl", D("1.07"))  # the last closing deal


def test_position_closing_waits_for_a_closing_deal_and_ignores_cash_flows():
    from brokers.gateway import DealKind

    assert pnl.position_closing([_deal(1, "in", "0")]) is None
    got = pnl.position_closing([_deal(1, "in", "0"), _deal(2, "out", "5.00", time_s=5),
                                _deal(3, "in", "100.00", kind=DealKind.BALANCE)])
    assert got is not None and got.realized_pnl == D("5.00")


@pytest.mark.parametrize(("peak", "flow", "equity", "expected"), [
    (D("10000"), D("-2500"), D("7500"), D("7500")),  # a 25 % withdrawal at the peak: dd 0
    (D("10000"), D("5000"), D("14000"), D("15000")),  # deposit 5,000, then 1,000 lost
    (D("10000"), D("0"), D("10100"), D("10100")),  # a new high
    (None, D("0"), D("500"), D("500")),  # first read
])
def test_peak_after_cash_flow(peak, flow, equity, expected):
    assert pnl.peak_after_cash_flow(previous_peak=peak, cash_flow=flow, equity=equity) == \
        expected
