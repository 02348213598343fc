"""The mark-to-market estimate (risk.mtm): pure Decimal, no database.

Every expected figure is computed by hand below with MetaTrader 5's profit formula for the
"Forex" and "CFD" calculation modes (MetaTrader 5 Help, "Margin and profit calculation";
order_calc_profit): buy (bid − open) × contract size × lots, sell (open − ask) × contract
size × lots, in the profit currency; into the deposit currency at the rate less favourable
to the account (a gain divided by the ask / multiplied by the bid, a loss divided by the
bid / multiplied by the ask); each position's profit rounded to the cent, half up.
"""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.gateway import Quote, Side
from guards.levels import DrawdownThresholds
from risk.mtm import (
    AccountFigures,
    Estimate,
    HeldPosition,
    SymbolTerms,
    equity_estimates,
    estimate_error_percent,
    position_profit,
)

D = Decimal
NOW = datetime(2017, 4, 19, 9, 0, tzinfo=UTC)
SERVER = "Broker-Live"
# DRAWDOWN_ALERT_THRESHOLD_PERCENT 15, MAX_DRAWDOWN_PERCENT 20, MIN_EQUITY 100
THRESHOLDS = DrawdownThresholds(alert_percent=D(15), max_percent=D(20), min_equity=D(100))
NEAR = D(2)  # near critical from 20 − 2 = 18 % on

QUOTES = {
    "EURUSD": Quote("EURUSD", D("1.07000"), D("1.07012"), NOW),
    "GBPUSD": Quote("GBPUSD", D("1.25000"), D("1.25012"), NOW),
    "USDJPY": Quote("USDJPY", D("150.000"), D("150.020"), NOW),
    "XAUUSD": Quote("XAUUSD", D("1900.00"), D("1900.50"), NOW),
}
TERMS = {
    (SERVER, "EURUSD"): SymbolTerms(contract_size=D(100000), currency_profit="USD"),
    (SERVER, "USDJPY"): SymbolTerms(contract_size=D(100000), currency_profit="JPY"),
    (SERVER, "XAUUSD"): SymbolTerms(contract_size=D(100), currency_profit="USD"),
}


def held(account_id: int, symbol: str, side: Side, volume: str, price_open: str,
         swap: str = "0", ticket: int = 1) -> HeldPosition:
    return HeldPosition(account_id=account_id, ticket=ticket, symbol=symbol, side=side,
                        volume=D(volume), price_open=D(price_open), swap=D(swap))


def figures(account_id: int, currency: str, balance: str, peak: str | None,
            credit: str = "0") -> AccountFigures:
    return AccountFigures(account_id=account_id, server=SERVER, currency=currency,
                          balance=D(balance), credit=D(credit),
                          peak_equity=None if peak is None else D(peak))


def estimate(accounts, positions, quotes=QUOTES, terms=TERMS):
    return equity_estimates(accounts=accounts, positions=positions, quotes=quotes,
                            terms=terms, thresholds=THRESHOLDS, near_critical_points=NEAR)


@pytest.mark.parametrize(("currency", "position", "expected"), [
    # GBP account, EURUSD (profit USD -> GBP through GBPUSD: divide)
    # buy 1 lot at 1.08000, closes at the bid 1.07000:
    # (1.07000 − 1.08000) × 100,000 × 1 = −1,000 USD, a loss: / bid 1.25000 = −800.00 GBP
    ("GBP", held(1, "EURUSD", Side.BUY, "1.00", "1.08000"), D("-800.00")),
    # sell 0.5 lot at 1.08000, closes at the ask 1.07012:
    # (1.08000 − 1.07012) × 100,000 × 0.5 = 494 USD, a gain: / ask 1.25012 = 395.16206… GBP
    ("GBP", held(1, "EURUSD", Side.SELL, "0.50", "1.08000"), D("395.16")),
    # USD account, USDJPY (profit JPY -> USD through USDJPY: divide)
    # buy 0.1 lot at 155.000, closes at the bid 150.000:
    # (150.000 − 155.000) × 100,000 × 0.1 = −50,000 JPY, a loss: / bid 150.000 = −333.33 USD
    ("USD", held(2, "USDJPY", Side.BUY, "0.10", "155.000"), D("-333.33")),
    # sell 0.1 lot at 155.000, closes at the ask 150.020:
    # (155.000 − 150.020) × 100,000 × 0.1 = 49,800 JPY, a gain: / ask 150.020 = 331.9557… USD
    ("USD", held(2, "USDJPY", Side.SELL, "0.10", "155.000"), D("331.96")),
    # USD account, XAUUSD, contract size 100 oz (CFD; profit in USD: no conversion)
    # buy 0.2 lot at 1,950.00, closes at the bid 1,900.00: (1900 − 1950) × 100 × 0.2 = −1,000
    ("USD", held(3, "XAUUSD", Side.BUY, "0.20", "1950.00"), D("-1000.00")),
    # sell 2 lots at 1,950.00, closes at the ask 1,900.50: (1950 − 1900.50) × 100 × 2 = 9,900
    ("USD", held(3, "XAUUSD", Side.SELL, "2.00", "1950.00"), D("9900.00")),
    # GBP account, USDJPY: no GBPJPY quote, so JPY -> USD -> GBP:
    # −50,000 JPY / bid 150.000 = −333.333… USD / bid 1.25000 = −266.666… = −266.67 GBP
    ("GBP", held(4, "USDJPY", Side.BUY, "0.10", "155.000"), D("-266.67")),
])
def test_position_profit_in_the_deposit_currency(currency, position, expected):
    quote = QUOTES[position.symbol]
    terms = TERMS[(SERVER, position.symbol)]
    assert position_profit(position, quote=quote, terms=terms, deposit_currency=currency,
                           quotes=QUOTES) == expected


def test_a_gbp_account_holding_eurusd():
    # balance 10,000.00 GBP; buy 1 lot −800.00 and swap −3.50; sell 0.5 lot +395.16
    # equity = 10,000 + 0 + (−800.00 − 3.50) + (395.16 + 0) = 9,591.66 GBP
    # drawdown = (10,000 − 9,591.66) / 10,000 × 100 = 4.0834 -> 4.08 %: ok
    result = estimate([figures(1, "GBP", "10000.00", "10000.00")], [
        held(1, "EURUSD", Side.BUY, "1.00", "1.08000", swap="-3.50", ticket=11),
        held(1, "EURUSD", Side.SELL, "0.50", "1.08000", ticket=12),
    ])[1]
    assert result.equity == D("9591.66")
    assert result.floating == D("-408.34")
    assert result.drawdown_percent == D("4.08")
    assert result.estimate is Estimate.OK
    assert result.positions == 2
    assert not result.estimate.needs_priority_read


def test_a_usd_account_holding_usdjpy_crosses_critical():
    # balance 5,000.00 + credit 100.00 USD; buy 0.1 lot −333.33, swap −2.00
    # equity = 5,000 + 100 − 333.33 − 2.00 = 4,764.67 USD
    # drawdown = (6,000 − 4,764.67) / 6,000 × 100 = 20.5888… -> 20.59 % ≥ 20: critical
    result = estimate([figures(2, "USD", "5000.00", "6000.00", credit="100.00")],
                      [held(2, "USDJPY", Side.BUY, "0.10", "155.000", swap="-2.00")])[2]
    assert result.equity == D("4764.67")
    assert result.drawdown_percent == D("20.59")
    assert result.estimate is Estimate.CRITICAL
    assert result.estimate.needs_priority_read


@pytest.mark.parametrize(("peak", "drawdown", "standing"), [
    # equity = 20,000 − 1,000.00 − 12.40 = 18,987.60 USD in every row
    ("20000", D("5.06"), Estimate.OK),  # (20,000 − 18,987.60) / 20,000 = 5.062 %
    ("22500", D("15.61"), Estimate.WARNING),  # 3,512.40 / 22,500 = 15.6107 %: ≥ 15, < 18
    ("23500", D("19.20"), Estimate.NEAR_CRITICAL),  # 4,512.40 / 23,500 = 19.2017 %: ≥ 18
    ("24000", D("20.89"), Estimate.CRITICAL),  # 5,012.40 / 24,000 = 20.885 % -> 20.89 (half up)
])
def test_xauusd_contract_size_100_and_the_levels(peak, drawdown, standing):
    result = estimate([figures(3, "USD", "20000.00", peak)],
                      [held(3, "XAUUSD", Side.BUY, "0.20", "1950.00", swap="-12.40")])[3]
    assert result.equity == D("18987.60")
    assert result.drawdown_percent == drawdown
    assert result.estimate is standing


def test_equity_below_the_minimum_is_critical_whatever_the_drawdown():
    # balance 150 USD, XAUUSD buy 0.01 lot at 1,950.00: (1900 − 1950) × 100 × 0.01 = −50.00
    # equity = 150 − 50.00 − 0.01 swap = 99.99 < MIN_EQUITY 100: critical, though the
    # drawdown from a peak of 100 is only (100 − 99.99) / 100 × 100 = 0.01 %
    result = estimate([figures(5, "USD", "150.00", "100.00")],
                      [held(5, "XAUUSD", Side.BUY, "0.01", "1950.00", swap="-0.01")])[5]
    assert result.equity == D("99.99")
    assert result.estimate is Estimate.CRITICAL


def test_many_accounts_in_one_pass_and_an_account_without_positions():
    accounts = [figures(1, "GBP", "10000.00", "10000.00"),
                figures(2, "USD", "5000.00", "6000.00", credit="100.00"),
                figures(6, "EUR", "800.00", None, credit="50.00")]
    positions = [held(2, "USDJPY", Side.BUY, "0.10", "155.000", swap="-2.00"),
                 held(1, "EURUSD", Side.BUY, "1.00", "1.08000", swap="-3.50", ticket=11),
                 held(99, "EURUSD", Side.BUY, "1.00", "1.08000"),  # not asked for: ignored
                 held(1, "EURUSD", Side.SELL, "0.50", "1.08000", ticket=12)]
    result = estimate(accounts, positions)
    assert set(result) == {1, 2, 6}
    assert (result[1].equity, result[2].equity) == (D("9591.66"), D("4764.67"))
    # no positions: balance + credit = 850.00 EUR; no peak yet: no drawdown
    assert (result[6].equity, result[6].drawdown_percent, result[6].estimate) == (
        D("850.00"), D("0.00"), Estimate.OK)


def test_an_account_missing_a_quote_a_spec_or_a_conversion_is_unknown():
    accounts = [figures(1, "USD", "1000", "1000"), figures(2, "CHF", "1000", "1000")]
    positions = [held(1, "EURUSD", Side.BUY, "0.01", "1.07000", ticket=1),
                 held(1, "GBPJPY", Side.BUY, "0.01", "190.000", ticket=2),  # no quote
                 held(2, "XAUUSD", Side.BUY, "0.01", "1900.00")]  # no USD->CHF pair
    result = estimate(accounts, positions)
    assert result[1].estimate is Estimate.UNKNOWN
    assert result[1].missing == ("quote GBPJPY",)
    assert result[1].equity is None
    assert not result[1].estimate.needs_priority_read
    assert result[2].missing == ("conversion USD->CHF",)
    quotes = {**QUOTES, "GBPJPY": Quote("GBPJPY", D("190"), D("190.03"), NOW)}
    assert estimate(accounts[:1], positions[:2], quotes=quotes)[1].missing == ("spec GBPJPY",)


def test_without_a_conversion_quote_the_tick_value_is_used():
    # CHF account, XAUUSD with tick size 0.01 and tick value 0.91 CHF (its last read):
    # buy 0.2 lot at 1,950.00 at the bid 1,900.00: (1900 − 1950) / 0.01 × 0.91 × 0.2 = −910.00
    terms = {(SERVER, "XAUUSD"): SymbolTerms(
        contract_size=D(100), currency_profit="USD", tick_size=D("0.01"), tick_value=D("0.91"),
        tick_value_currency="CHF")}
    result = estimate([figures(7, "CHF", "5000.00", "5000.00")],
                      [held(7, "XAUUSD", Side.BUY, "0.20", "1950.00")], terms=terms)[7]
    assert result.equity == D("4090.00")  # 5,000 − 910.00


CASES = [  # (deposit currency, symbol): the three currency paths above
    ("GBP", "EURUSD"), ("USD", "USDJPY"), ("USD", "XAUUSD"), ("GBP", "USDJPY"),
    ("USD", "EURUSD"), ("EUR", "EURUSD"),
]
money_st = st.decimals(min_value=D("-10000"), max_value=D("10000"), places=2)


@given(case=st.sampled_from(CASES), side=st.sampled_from([Side.BUY, Side.SELL]),
       lots=st.integers(min_value=1, max_value=10000), swap=money_st, balance=money_st,
       spread=st.integers(min_value=0, max_value=500),
       price=st.decimals(min_value=D("0.5"), max_value=D("3000"), places=3))
def test_a_position_at_its_open_price_contributes_exactly_its_swap(
        case, side, lots, swap, balance, spread, price):
    currency, symbol = case
    # the price it closes at is its open price: the bid for a buy, the ask for a sell
    step = D("0.001") * spread
    bid, ask = (price, price + step) if side is Side.BUY else (price - step, price)
    quotes = {**QUOTES, symbol: Quote(symbol, bid, ask, NOW)}
    position = held(1, symbol, side, str(D(lots) / 100), str(price), swap=str(swap))
    result = estimate([figures(1, currency, str(balance), None)], [position],
                      quotes=quotes)[1]
    assert result.floating == swap
    assert result.equity == balance + swap


def test_a_position_at_its_open_price_contributes_its_swap_seeded_table():
    # the same property over a seeded random table (reproducible without hypothesis)
    rng = random.Random(11)
    for _ in range(200):
        currency, symbol = rng.choice(CASES)
        side = rng.choice([Side.BUY, Side.SELL])
        price = D(rng.randint(500, 3_000_000)) / 1000
        swap = D(rng.randint(-100_000, 100_000)) / 100
        quote = Quote(symbol, price, price + D("0.002"), NOW) if side is Side.BUY else \
            Quote(symbol, price - D("0.002"), price, NOW)
        quotes = {**QUOTES, symbol: quote}
        position = held(1, symbol, side, str(D(rng.randint(1, 5000)) / 100), str(price),
                        swap=str(swap))
        result = estimate([figures(1, currency, "1000.00", None)], [position],
                          quotes=quotes)[1]
        assert result.floating == swap, (currency, symbol, side, price, swap)


@pytest.mark.parametrize(("estimated", "read", "expected"), [
    ("9900.00", "10000.00", D("-1")),  # (9,900 − 10,000) / 10,000 × 100 = −1 %: too low
    ("10050.00", "10000.00", D("0.5")),  # +50 / 10,000 × 100 = 0.5 %: hid a loss
    ("4764.67", "4764.67", D("0")),
])
def test_estimate_error_percent(estimated, read, expected):
    assert estimate_error_percent(estimated_equity=D(estimated), read_equity=D(read)) == expected


def test_estimate_error_percent_of_a_non_positive_read_is_none():
    assert estimate_error_percent(estimated_equity=D(10), read_equity=D(0)) is None
    assert estimate_error_percent(estimated_equity=D(10), read_equity=D(-5)) is None


def test_the_estimate_needs_no_django():
    # pure: importing it loads neither Django nor the ORM
    code = ("import sys, risk.mtm; "
            "sys.exit(1 if any(m.startswith('django') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
