"""The simulated MetaTrader 5 terminal (brokers.sim): no Django, no database.

Expected figures are computed by hand from the bars in brokers/sim/EURUSD_H1.csv (bid prices)
with the default 12-point spread (ask = bid + 0.00012) and the MetaTrader 5 forex formulas:
  profit = (close - open) * 100000 * lots for a buy, (open - close) * 100000 * lots for a sell,
           in USD; EUR account / EURUSD bid; GBP account / 1.25000 (fixed GBPUSD_RATE);
  margin = lots * 100000 / leverage in EUR; USD account * EURUSD bid; GBP * bid / 1.25.
Bars used: #0 2017-04-19 09:00 O 1.07160 H 1.07220 L 1.07083 C 1.07219 (bullish);
#1 10:00 O 1.07214 H 1.07296; #2 11:00 O 1.07256 H 1.07299 L 1.07170 C 1.07192 (bearish);
#59 2017-04-21 20:00 (Friday) O 1.07029 H 1.07306 C 1.07268; #60 2017-04-23 21:00 O 1.08930.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers import mt5_api as mt5
from brokers.sim import GBPUSD_RATE, Bar, ReplayClock, SimAccount, SimTerminal, load_bars
from brokers.sim.bot import SimBot
from brokers.sim.prices import BAR_DURATION, bar_at
from brokers.sim.roster import (
    BOT_MAGIC,
    DEMO_SERVER,
    demo_password,
    demo_roster,
    investor_password,
    seed_terminal,
)

BARS = load_bars()
SERVER = "Sim-Test"
GAP_FRIDAY = 59  # 2017-04-21 20:00, the last bar before the weekend
D = Decimal


def account(login: int = 1001, currency: str = "USD", leverage: int = 100,
            balance: str = "10000", **extra: object) -> SimAccount:
    return SimAccount(login=login, password=f"pw{login}", investor_password=f"inv{login}",
                      server=SERVER, currency=currency, leverage=leverage, balance=D(balance),
                      name=f"Trader {login}", **extra)  # type: ignore[arg-type]


def terminal(*accounts: SimAccount, start: int = 0, bars: list[Bar] | None = None,
             login: bool = True) -> Any:
    """A manual-clock terminal at bar ``start``, logged in to the first account. Typed
    ``Any`` like the (untyped) MetaTrader5 module: the tests check for None themselves."""
    accounts = accounts or (account(),)
    term = SimTerminal(bars=bars or BARS, clock=ReplayClock(3600, start_index=start,
                                                            manual=True), accounts=accounts)
    assert term.initialize()
    if login:
        first = accounts[0]
        assert term.login(first.login, password=first.password, server=SERVER)
    return term


def all_deals(term: Any) -> tuple:
    """Every deal of the logged-in account: the real module needs both dates."""
    return term.history_deals_get(0, 2**31 - 1)


def flat_bars(*bids: str) -> list[Bar]:
    """Bars with open = high = low = close, hourly from Monday 2024-01-01 00:00 UTC."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [Bar(start + BAR_DURATION * i, D(b), D(b), D(b), D(b), 1) for i, b in enumerate(bids)]


def buy(volume: float = 0.10, **extra: object) -> dict[str, object]:
    return {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": volume,
            "type": mt5.ORDER_TYPE_BUY, "type_filling": mt5.ORDER_FILLING_IOC, **extra}


def sell(volume: float = 0.10, **extra: object) -> dict[str, object]:
    return {**buy(volume, **extra), "type": mt5.ORDER_TYPE_SELL}


# ------------------------------------------------------------------------------- prices


def test_bars_load_with_the_weekend_gap() -> None:
    assert len(BARS) == 5000
    assert BARS[0].time == datetime(2017, 4, 19, 9, tzinfo=UTC)
    assert BARS[-1].time == datetime(2018, 2, 7, 15, tzinfo=UTC)
    assert BARS[0].open == D("1.07160") and isinstance(BARS[0].open, Decimal)
    assert sum(1 for a, b in itertools.pairwise(BARS)
               if b.time - a.time != BAR_DURATION) == 42
    friday, sunday = BARS[GAP_FRIDAY], BARS[GAP_FRIDAY + 1]
    assert (friday.time, friday.close) == (datetime(2017, 4, 21, 20, tzinfo=UTC), D("1.07268"))
    assert (sunday.time, sunday.open) == (datetime(2017, 4, 23, 21, tzinfo=UTC), D("1.08930"))


def test_intra_bar_path() -> None:
    bullish, bearish = BARS[0], BARS[2]
    # bullish: open -> low -> high -> close at fractions 0, 1/3, 2/3, 1
    assert [bullish.price_at(f) for f in (0, 1 / 3, 2 / 3, 1)] == \
        [D("1.07160"), D("1.07083"), D("1.07220"), D("1.07219")]
    # half way open -> low: (1.07160 + 1.07083) / 2 = 1.071215 -> 1.07122 (half up)
    assert bullish.price_at(1 / 6) == D("1.07122")
    # bearish: open -> high -> low -> close; f=0.5 is half way high -> low:
    # (1.07299 + 1.07170) / 2 = 1.072345 -> 1.07235
    assert bearish.price_at(0.5) == D("1.07235")
    assert bearish.range_between(0.0, 0.5) == (D("1.07235"), D("1.07299"))


def test_replay_clock_real_time_manual_cap_and_loop() -> None:
    now = [100.0]
    clock = ReplayClock(10.0, now=lambda: now[0], n_bars=3)
    now[0] += 25  # 2.5 bars
    assert clock.position() == (2, 0.5)
    clock.advance()  # to the start of the next bar... capped: bar 2 is the last
    assert clock.position() == (2, 1.0)
    looping = ReplayClock(10.0, now=lambda: now[0], n_bars=3, loop=True)
    now[0] += 35
    assert looping.position() == (3, 0.5) and looping.index == 0
    manual = ReplayClock(3600, start_index=4, manual=True, n_bars=10)
    manual.advance_fraction(0.25)
    now[0] += 1000  # manual clocks ignore time
    assert manual.position() == (4, 0.25)
    manual.advance(2)
    assert manual.position() == (6, 0.0)
    # a looping replay starts over one whole span later: time never goes back
    span = BARS[-1].time - BARS[0].time + BAR_DURATION
    assert bar_at(BARS, 5000).time == BARS[0].time + span
    assert bar_at(BARS, 5000).open == BARS[0].open


def test_server_time_moves_within_a_bar() -> None:
    term = terminal()
    term.sim_advance(0, fraction=0.5)
    tick = term.symbol_info_tick("EURUSD")
    # 09:00 + 0.5 h; bid half way open -> low at f=0.5 (leg 2: low -> high, 1/2 of the way):
    # 1.07083 + (1.07220 - 1.07083) * 0.5 = 1.071515 -> 1.07152
    assert tick.time == int(datetime(2017, 4, 19, 9, 30, tzinfo=UTC).timestamp())
    assert tick.bid == pytest.approx(1.07152) and tick.ask == pytest.approx(1.07164)


# ---------------------------------------------------------------------------- sessions


def test_login_ok_wrong_password_unknown_server_and_read_only() -> None:
    term = terminal(account(1001), account(1002), login=False)
    assert term.login(1001, password="pw1001", server=SERVER)
    assert term.last_error() == (mt5.RES_S_OK, "Success")
    assert term.account_info().login == 1001
    assert term.login(1002, password="pw1002", server=SERVER)  # one account at a time
    assert term.account_info().login == 1002
    assert term.login(1001, password="wrong", server=SERVER) is False
    assert term.last_error() == (mt5.RES_E_AUTH_FAILED, "Authorization failed")
    assert term.account_info() is None  # a failed login logs out
    assert term.login(1001, password="pw1001", server="Other-Server") is False
    assert term.login(9999, password="pw9999", server=SERVER) is False
    assert term.last_error()[0] == mt5.RES_E_AUTH_FAILED
    assert term.login(1001, password="inv1001", server=SERVER)
    assert term.account_info().trade_allowed is False


def test_calls_before_initialize_and_login_fail() -> None:
    term: Any = SimTerminal(bars=BARS, accounts=[account()])
    assert term.account_info() is None
    assert term.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_CONNECT
    assert term.login(1001, password="pw1001") is False
    assert term.initialize()
    assert term.account_info() is None and term.positions_get() is None
    assert term.last_error()[0] == mt5.RES_E_FAIL
    assert term.terminal_info().connected is False
    assert term.initialize(login=1001, password="pw1001", server=SERVER)
    assert term.terminal_info().connected is True
    term.shutdown()
    assert term.account_info() is None


def test_constants_are_class_attributes() -> None:
    term = terminal()
    assert term.TRADE_RETCODE_DONE == vars(SimTerminal)["TRADE_RETCODE_DONE"] == 10009
    assert term.RES_E_AUTH_FAILED == mt5.RES_E_AUTH_FAILED
    assert term.ORDER_TYPE_SELL == mt5.ORDER_TYPE_SELL


def test_symbol_info() -> None:
    term = terminal(account(currency="EUR"))
    info = term.symbol_info("EURUSD")
    assert (info.digits, info.point, info.trade_contract_size) == (5, 0.00001, 100000.0)
    assert (info.volume_min, info.volume_step, info.volume_max) == (0.01, 0.01, 100.0)
    assert info.filling_mode == mt5.SYMBOL_FILLING_FOK | mt5.SYMBOL_FILLING_IOC
    assert (info.currency_base, info.currency_profit, info.currency_margin) == \
        ("EUR", "USD", "EUR")
    assert (info.bid, info.ask, info.spread) == (1.0716, 1.07172, 12)
    # one tick (0.00001) on one lot = 1 USD = 1 / 1.07160 EUR
    assert info.trade_tick_value == pytest.approx(1 / 1.0716)
    assert term.symbol_info("GBPUSD") is None
    assert term.last_error()[0] == mt5.RES_E_NOT_FOUND


# ---------------------------------------------------------------------- profit and margin


@pytest.mark.parametrize(
    ("currency", "leverage", "profit", "margin"),
    [
        # (1.08930 - 1.07041) * 100000 * 0.10 = 188.90 USD;
        # margin 0.10 * 100000 / 100 = 100 EUR * 1.08930 = 108.93 USD
        ("USD", 100, "188.90", "108.93"),
        # 188.90 USD / 1.08930 = 173.414... -> 173.41 EUR; margin 0.10 * 100000 / 200 = 50 EUR
        ("EUR", 200, "173.41", "50.00"),
        # 188.90 / 1.25 = 151.12 GBP; margin 20 EUR * 1.08930 / 1.25 = 17.4288 -> 17.43 GBP
        ("GBP", 500, "151.12", "17.43"),
    ],
)
def test_profit_and_margin_in_the_account_currency(currency: str, leverage: int, profit: str,
                                                   margin: str) -> None:
    assert D("1.25000") == GBPUSD_RATE  # the documented simulation assumption
    term = terminal(account(currency=currency, leverage=leverage), start=GAP_FRIDAY)
    result = term.order_send(buy(0.10))
    assert result.price == 1.07041  # the ask at the Friday 20:00 open: 1.07029 + 0.00012
    term.sim_advance()  # the Sunday 21:00 open: bid 1.08930
    (position,) = term.positions_get()
    assert position.price_current == 1.0893
    assert position.profit == float(profit)
    info = term.account_info()
    assert info.margin == float(margin)
    assert info.equity == pytest.approx(10000 + float(profit))
    assert info.margin_free == pytest.approx(info.equity - info.margin)


def test_margin_level() -> None:
    term = terminal(start=GAP_FRIDAY)
    assert term.account_info().margin_level == 0.0  # no margin used: MT5 reports 0
    term.order_send(buy(0.10))
    term.sim_advance()
    info = term.account_info()
    # equity 10000 + 188.90 = 10188.90; level 10188.90 / 108.93 * 100 = 9353.62 %
    assert (info.equity, info.margin, info.margin_free, info.margin_level) == \
        (10188.90, 108.93, 10079.97, 9353.62)


def test_margin_with_leverage_30() -> None:
    term = terminal(account(leverage=30, balance="100000"))
    term.order_send(buy(1.00))
    # 1 lot * 100000 / 30 = 3333.333 EUR * 1.07160 = 3572.00 USD
    assert term.account_info().margin == 3572.00


# ------------------------------------------------------------------------------ orders


def test_order_send_done_opens_a_position_and_an_in_deal() -> None:
    term = terminal()
    result = term.order_send(buy(0.10, magic=7, comment="x" * 40, deviation=10,
                                 price=1.07165))
    assert result.retcode == mt5.TRADE_RETCODE_DONE
    assert result.comment == "Request executed"
    # within deviation: |1.07165 - 1.07172| = 7 points <= 10, filled at the market ask
    assert (result.volume, result.price, result.bid, result.ask) == \
        (0.10, 1.07172, 1.0716, 1.07172)
    assert result.retcode_external == 0 and result.request["magic"] == 7
    (position,) = term.positions_get()
    assert position.ticket == position.identifier == result.order
    assert position.comment == "x" * 31  # MT5 keeps 31 characters
    assert position.reason == mt5.POSITION_REASON_EXPERT
    deal = term.history_deals_get(position=position.ticket)[0]
    assert (deal.ticket, deal.entry, deal.type, deal.reason) == \
        (result.deal, mt5.DEAL_ENTRY_IN, mt5.DEAL_TYPE_BUY, mt5.DEAL_REASON_EXPERT)
    assert deal.position_id == position.ticket and result.deal > result.order


@pytest.mark.parametrize(
    ("request_", "retcode"),
    [
        (buy(0.10, price=1.07100, deviation=10), mt5.TRADE_RETCODE_REQUOTE),  # 72 pts > 10
        (buy(0.015), mt5.TRADE_RETCODE_INVALID_VOLUME),  # not a multiple of 0.01
        (buy(0.001), mt5.TRADE_RETCODE_INVALID_VOLUME),  # below 0.01
        (buy(101), mt5.TRADE_RETCODE_INVALID_VOLUME),  # above 100
        (buy(0.10, type_filling=mt5.ORDER_FILLING_RETURN), mt5.TRADE_RETCODE_INVALID_FILL),
        (buy(0.10, symbol="GBPUSD"), mt5.TRADE_RETCODE_INVALID),
        (buy(0.10, sl=1.07200), mt5.TRADE_RETCODE_INVALID_STOPS),  # a buy's SL above bid
        (sell(0.10, tp=1.07200), mt5.TRADE_RETCODE_INVALID_STOPS),  # a sell's TP above ask
        (buy(0.10, position=424242), mt5.TRADE_RETCODE_POSITION_CLOSED),
        # 1 lot at 1:100 needs 1000 EUR * 1.07160 = 1071.60 USD > 1000 USD free
        (buy(1.00), mt5.TRADE_RETCODE_NO_MONEY),
    ],
)
def test_order_send_refusals_change_nothing(request_: dict[str, object], retcode: int) -> None:
    term = terminal(account(balance="1000"))
    result = term.order_send(request_)
    assert result.retcode == retcode
    assert (result.deal, result.order, result.volume) == (0, 0, 0.0)
    assert term.positions_get() == ()
    assert len(all_deals(term)) == 1  # only the initial balance deal
    if retcode == mt5.TRADE_RETCODE_REQUOTE:
        assert (result.bid, result.ask) == (1.0716, 1.07172)


def test_order_send_malformed_request_returns_none() -> None:
    term = terminal()
    assert term.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD"}) is None
    assert term.last_error()[0] == mt5.RES_E_INVALID_PARAMS
    assert term.order_send({**buy(), "volumes": 1}) is None  # unknown field
    assert term.order_send(buy("lots")) is None  # type: ignore[arg-type]


def test_investor_login_is_read_only() -> None:
    term = terminal()
    term.order_send(buy(0.10))
    assert term.login(1001, password="inv1001", server=SERVER)
    assert term.positions_total() == 1  # reads work
    result = term.order_send(buy(0.10))
    assert result.retcode == mt5.TRADE_RETCODE_TRADE_DISABLED
    assert term.positions_total() == 1


def test_close_partial_then_full_then_already_closed() -> None:
    term = terminal(start=GAP_FRIDAY)
    ticket = term.order_send(buy(0.30)).order  # at ask 1.07041
    term.sim_advance()  # bid 1.08930
    result = term.order_send(sell(0.10, position=ticket))
    assert (result.retcode, result.volume, result.price) == \
        (mt5.TRADE_RETCODE_DONE, 0.10, 1.0893)
    (position,) = term.positions_get()
    assert position.volume == 0.20
    # realized: (1.08930 - 1.07041) * 100000 * 0.10 = 188.90; floating on 0.20: 377.80
    assert position.profit == 377.80
    assert term.account_info().balance == 10188.90
    out = term.history_deals_get(ticket=result.order)[0]  # ticket= selects by ORDER
    assert (out.entry, out.type, out.profit, out.reason, out.position_id) == \
        (mt5.DEAL_ENTRY_OUT, mt5.DEAL_TYPE_SELL, 188.90, mt5.DEAL_REASON_CLIENT, ticket)
    assert term.order_send(sell(0.40, position=ticket)).retcode == \
        mt5.TRADE_RETCODE_INVALID_VOLUME  # more than the 0.20 left
    assert term.order_send(buy(0.20, position=ticket)).retcode == \
        mt5.TRADE_RETCODE_INVALID  # a close must be the opposite type
    assert term.order_send(sell(0.20, position=ticket)).retcode == mt5.TRADE_RETCODE_DONE
    assert term.positions_get() == ()
    assert term.account_info().balance == pytest.approx(10000 + 188.90 + 377.80)
    assert term.order_send(sell(0.20, position=ticket)).retcode == \
        mt5.TRADE_RETCODE_POSITION_CLOSED


# ---------------------------------------------------------------------- stops and gaps


def test_stop_loss_fills_at_the_sl_price_within_the_bar() -> None:
    term = terminal()
    term.order_send(buy(0.10, sl=1.07100))  # ask 1.07172; bar 0 dips to 1.07083 at f=1/3
    assert term.sim_advance(0, fraction=0.5) == 1
    assert term.positions_get() == ()
    out = all_deals(term)[-1]
    # (1.07100 - 1.07172) * 100000 * 0.10 = -7.20 USD
    assert (out.reason, out.price, out.profit, out.comment) == \
        (mt5.DEAL_REASON_SL, 1.071, -7.20, "[sl 1.07100]")
    assert out.time == int(BARS[0].time.timestamp())


def test_take_profit_fills_at_the_tp_price_on_a_later_bar() -> None:
    term = terminal()
    term.order_send(buy(0.10, tp=1.07250))  # bar 0 tops at 1.07220, bar 1 at 1.07296
    term.sim_advance(2)
    out = all_deals(term)[-1]
    # (1.07250 - 1.07172) * 100000 * 0.10 = 7.80 USD, at bar #1's time
    assert (out.reason, out.price, out.profit) == (mt5.DEAL_REASON_TP, 1.0725, 7.80)
    assert out.time == int(BARS[1].time.timestamp())


def test_stop_loss_wins_when_both_levels_are_inside_one_bar() -> None:
    bars = [*flat_bars("1.10000"),
            Bar(datetime(2024, 1, 1, 1, tzinfo=UTC), D("1.10000"), D("1.10200"),
                D("1.09800"), D("1.09900"), 1)]  # bearish: reaches the high (TP) first
    term = terminal(bars=bars)
    term.order_send(buy(0.10, sl=1.09900, tp=1.10100))
    term.sim_advance(2)  # past the end: bar 1 is processed whole
    out = all_deals(term)[-1]
    assert (out.reason, out.price) == (mt5.DEAL_REASON_SL, 1.099)


def test_weekend_gap_fills_a_sell_stop_at_the_sunday_open_ask() -> None:
    term = terminal(start=GAP_FRIDAY)
    # sell at the Friday 20:00 bid 1.07029, SL 1.08000; Friday's high ask 1.07318 < SL
    ticket = term.order_send(sell(0.10, sl=1.08000)).order
    term.sim_advance()
    assert term.positions_get() == ()
    (out,) = term.history_deals_get(position=ticket)[1:]
    # gap: Sunday 21:00 open ask 1.08930 + 0.00012 = 1.08942, worse than the SL
    # (1.07029 - 1.08942) * 100000 * 0.10 = -191.30 USD
    assert (out.reason, out.price, out.profit, out.type) == \
        (mt5.DEAL_REASON_SL, 1.08942, -191.30, mt5.DEAL_TYPE_BUY)
    assert out.time == int(datetime(2017, 4, 23, 21, tzinfo=UTC).timestamp())
    assert term.account_info().balance == 10000 - 191.30


def test_weekend_gap_fills_a_buy_take_profit_at_the_better_open() -> None:
    term = terminal(start=GAP_FRIDAY)
    term.order_send(buy(0.10, tp=1.08000))  # ask 1.07041
    term.sim_advance()
    out = all_deals(term)[-1]
    # (1.08930 - 1.07041) * 100000 * 0.10 = 188.90 USD at the Sunday open bid 1.08930
    assert (out.reason, out.price, out.profit) == (mt5.DEAL_REASON_TP, 1.0893, 188.90)


def test_stop_out_closes_the_most_losing_position() -> None:
    term = terminal(account(balance="1000", leverage=500),
                    bars=flat_bars("1.10000", "1.09180"))
    big = term.order_send(buy(2.00)).order  # ask 1.10012
    hedge = term.order_send(sell(1.00)).order  # bid 1.10000
    # margin 3 lots * 100000 / 500 = 600 EUR * 1.10000 = 660 USD; equity 1000 - 24 - 12 = 964
    assert term.account_info().margin == 660.00 and term.account_info().equity == 964.00
    term.sim_advance()  # bid 1.09180, ask 1.09192
    # buy 2.00: (1.09180 - 1.10012) * 200000 = -1664.00; sell 1.00: (1.10000 - 1.09192)
    # * 100000 = +808.00; equity 144.00; margin 600 * 1.09180 = 655.08; level 21.98 % <= 50
    # -> the 2-lot buy is closed (SO). Then margin 218.36, level 144 / 218.36 = 65.95 % > 50.
    (left,) = term.positions_get()
    assert left.ticket == hedge
    out = term.history_deals_get(position=big)[-1]
    assert (out.reason, out.profit, out.price, out.comment) == \
        (mt5.DEAL_REASON_SO, -1664.00, 1.0918, "[so 21.98%]")
    info = term.account_info()
    assert (info.balance, info.equity, info.margin, info.margin_level) == \
        (-664.00, 144.00, 218.36, 65.95)


def test_deals_history_reasons_and_dates() -> None:
    term = terminal()
    term.order_send(buy(0.10, magic=7))  # EXPERT
    ticket = term.positions_get()[0].ticket
    term.sim_advance()
    term.order_send(sell(0.10, position=ticket))  # magic 0: CLIENT
    manual = term.sim_open(1001, "EURUSD", "sell", "0.05")
    term.sim_advance()
    term.sim_close(1001, manual)  # closed by hand
    deals = term.history_deals_get(datetime(2017, 1, 1), datetime(2018, 1, 1))
    assert [(d.type, d.entry, d.reason) for d in deals] == [
        (mt5.DEAL_TYPE_BALANCE, mt5.DEAL_ENTRY_IN, mt5.DEAL_REASON_CLIENT),
        (mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, mt5.DEAL_REASON_EXPERT),
        (mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, mt5.DEAL_REASON_CLIENT),
        (mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_IN, mt5.DEAL_REASON_CLIENT),
        (mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_OUT, mt5.DEAL_REASON_CLIENT),
    ]
    assert deals[0].profit == 10000.0
    tickets = [d.ticket for d in deals]
    assert tickets == sorted(tickets) and len(set(tickets)) == 5
    # bar #1 starts at 2017-04-19 10:00 UTC: epoch seconds work too
    since = int(datetime(2017, 4, 19, 10, tzinfo=UTC).timestamp())
    assert len(term.history_deals_get(since, since + 7200)) == 3
    assert term.history_deals_get(datetime(2016, 1, 1), datetime(2016, 2, 1)) == ()
    assert term.history_deals_get("yesterday") is None  # type: ignore[arg-type]
    assert term.last_error()[0] == mt5.RES_E_INVALID_PARAMS


# ------------------------------------------------------------------------------ faults


def test_positions_get_empty_tuple_versus_none_under_a_fault() -> None:
    term = terminal()
    assert term.positions_get() == ()
    term.sim_inject_fault("none", method="positions_get")
    assert term.positions_get() is None
    assert term.last_error()[0] == mt5.RES_E_INTERNAL_FAIL
    assert term.positions_get() == ()
    assert term.last_error()[0] == mt5.RES_S_OK


def test_timeout_fault_sleeps_then_fails() -> None:
    term = terminal()
    term.sim_inject_fault("timeout", method="account_info", delay=0.05)
    started = time.monotonic()
    assert term.account_info() is None
    assert time.monotonic() - started >= 0.05
    assert term.last_error() == (mt5.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
    assert term.account_info() is not None


def test_delay_fault_answers_late() -> None:
    term = terminal()
    term.sim_inject_fault("delay", delay=0.05)
    started = time.monotonic()
    assert term.account_info().login == 1001
    assert time.monotonic() - started >= 0.05


def test_disconnect_fault_lasts_count_calls_of_any_method() -> None:
    term = terminal()
    term.sim_inject_fault("disconnect", count=2)
    assert term.symbol_info_tick("EURUSD") is None
    assert term.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_CONNECT
    assert term.login(1001, password="pw1001", server=SERVER) is False
    assert term.account_info() is not None


def test_fault_restricted_to_another_login_does_not_fire() -> None:
    term = terminal(account(1001), account(1002))
    term.sim_inject_fault("none", login=1002)
    assert term.account_info() is not None  # logged in to 1001
    assert term.login(1002, password="pw1002", server=SERVER) is False  # logging in to 1002
    assert term.sim_state()["pending_faults"] == 0


def test_order_faults_requote_reject_partial_slippage_lost_reply() -> None:
    term = terminal()
    term.sim_inject_fault("requote")
    term.sim_inject_fault("reject")
    assert term.account_info() is not None  # order faults only hit order_send
    assert term.order_send(buy()).retcode == mt5.TRADE_RETCODE_REQUOTE
    assert term.order_send(buy()).retcode == mt5.TRADE_RETCODE_REJECT
    assert term.positions_total() == 0

    term.sim_inject_fault("partial_fill", fraction=0.5)
    result = term.order_send(buy(0.15))  # 0.075 rounded down to the step: 0.07
    assert (result.retcode, result.volume) == (mt5.TRADE_RETCODE_DONE_PARTIAL, 0.07)
    assert term.positions_get()[0].volume == 0.07

    term.sim_inject_fault("slippage", points=5)
    assert term.order_send(buy(0.10)).price == 1.07177  # ask 1.07172 + 5 points
    term.sim_inject_fault("slippage", points=5)
    assert term.order_send(sell(0.10)).price == 1.07155  # bid 1.07160 - 5 points

    term.sim_inject_fault("lost_reply")
    assert term.order_send(buy(0.10)) is None  # executed, but the reply was lost
    assert term.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_TIMEOUT
    assert term.positions_total() == 4
    with pytest.raises(ValueError):
        term.sim_inject_fault("gremlins")


# ---------------------------------------------------------------------- admin and state


def test_admin_calls_do_not_touch_the_session() -> None:
    term = terminal(account(1001), account(1002, currency="GBP"))
    ticket = term.sim_open(1002, "EURUSD", "buy", "0.10", magic=BOT_MAGIC, comment="bot:x")
    assert term.account_info().login == 1001 and term.positions_get() == ()
    assert [p.ticket for p in term.sim_positions(1002)] == [ticket]
    assert term.sim_positions(1002)[0].reason == mt5.POSITION_REASON_EXPERT
    with pytest.raises(ValueError):
        term.sim_open(1002, "EURUSD", "buy", "1000")
    deal = term.sim_close(1002, ticket)
    assert deal > ticket and term.sim_positions(1002) == ()
    state = term.sim_state()
    assert json.loads(json.dumps(state)) == state
    assert (state["bar_index"], state["bid"], state["accounts"], state["logged_in"]) == \
        (0, 1.0716, 2, 1001)


def test_concurrent_calls_keep_tickets_unique() -> None:
    term = terminal(account(balance="1000000"))
    results: list[int] = []

    def trade() -> None:
        for _ in range(20):
            results.append(term.order_send(buy(0.01)).order)
            term.positions_get()

    threads = [threading.Thread(target=trade) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 80 and term.positions_total() == 80


# ------------------------------------------------------------------------- roster, bot


def test_demo_roster_is_deterministic_and_mixed() -> None:
    roster = demo_roster()
    assert roster == demo_roster()
    assert roster != demo_roster(seed=8)
    accounts = [a for m in roster for a in m.accounts]
    currencies = [a.currency for a in accounts]
    assert currencies.count("GBP") >= 3 and currencies.count("EUR") >= 2
    assert currencies.count("USD") > len(accounts) / 2
    logins = [a.login for a in accounts]
    assert logins == list(range(51000001, 51000001 + len(accounts)))
    assert {a.leverage for a in accounts} <= {30, 100, 200, 500}
    assert min(a.balance for a in accounts) == 500 and max(a.balance for a in accounts) == 250000
    assert all(a.server == DEMO_SERVER and a.password == demo_password(a.login)
               and a.investor_password == investor_password(a.login) for a in accounts)
    assert len({m.telegram_id for m in roster}) == len({m.username for m in roster}) == 20
    for a in accounts:
        orders = [o for m in roster for o in m.initial_orders if o.login == a.login]
        assert 1 <= len(orders) <= 5


def test_seed_terminal_opens_the_bot_positions() -> None:
    roster = demo_roster(n_members=6)
    term = SimTerminal(bars=BARS)
    tickets = seed_terminal(term, roster)
    for member in roster:
        for acc in member.accounts:
            positions = term.sim_positions(acc.login)
            assert [p.ticket for p in positions] == tickets[acc.login]
            assert all(p.magic == BOT_MAGIC for p in positions)
            assert positions[0].comment == f"bot:{acc.login}:1"
            assert term.sim_account_info(acc.login).margin_level > 200  # sized sensibly
    first = roster[0].accounts[0]
    assert term.initialize(login=first.login, password=demo_password(first.login),
                           server=DEMO_SERVER)


def test_bot_keeps_every_account_trading_deterministically() -> None:
    def run() -> list[tuple[str, int, int]]:
        roster = demo_roster(n_members=8)
        term = SimTerminal(bars=BARS)
        seed_terminal(term, roster)
        bot = SimBot(term, roster, seed=3)
        done = []
        for _ in range(300):
            term.sim_advance()
            done += [(a.kind, a.login, a.ticket) for a in bot.step()]
            assert all(1 <= len(term.sim_positions(login)) <= 6
                       for login in term.sim_logins())
        kinds = {kind for kind, _, _ in done}
        assert kinds == {"open", "close", "manual_close"}
        return done

    assert run() == run()


def test_bot_run_forever_steps_on_new_bars() -> None:
    roster = demo_roster(n_members=2)
    now = [0.0]
    term = SimTerminal(bars=BARS, clock=ReplayClock(1.0, now=lambda: now[0]))
    seed_terminal(term, roster)
    bot = SimBot(term, roster, open_chance=1.0, close_chance=0.0, manual_close_chance=0.0)
    stop = threading.Event()
    runner = threading.Thread(target=bot.run_forever, args=(stop, 0.01))
    runner.start()
    try:
        time.sleep(0.05)
        before = term.sim_state()["positions"]
        now[0] = 1.0  # a new bar starts
        deadline = time.monotonic() + 2
        while term.sim_state()["positions"] == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert term.sim_state()["positions"] > before
    finally:
        stop.set()
        runner.join(timeout=2)


# --------------------------------------------------------------------------- properties

_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(["buy", "sell"]),
                  st.integers(min_value=1, max_value=300)),
        st.tuples(st.just("advance"), st.integers(min_value=0, max_value=80)),
        st.tuples(st.just("fraction"), st.floats(min_value=0.0, max_value=0.9)),
        st.tuples(st.just("close"), st.integers(min_value=0, max_value=10)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(currency=st.sampled_from(["USD", "EUR", "GBP"]),
       start=st.integers(min_value=0, max_value=4900), steps=_STEPS)
def test_accounting_identities_hold(currency: str, start: int, steps: list[tuple]) -> None:
    term = terminal(account(currency=currency, leverage=200, balance="20000"), start=start)
    for step in steps:
        if step[0] == "open":
            order = buy if step[1] == "buy" else sell
            term.order_send(order(step[2] / 100, sl=0, tp=0))
        elif step[0] == "advance":
            term.sim_advance(step[1])
        elif step[0] == "fraction":
            term.sim_advance(0, fraction=step[1])
        else:
            positions = term.positions_get()
            if positions:
                p = positions[step[1] % len(positions)]
                closer = sell if p.type == mt5.POSITION_TYPE_BUY else buy
                term.order_send(closer(p.volume, position=p.ticket))
        info = term.account_info()
        positions = term.positions_get()
        # MT5: equity = balance + credit + sum(profit + swap); margin_free = equity - margin
        assert info.equity == pytest.approx(info.balance + sum(p.profit for p in positions),
                                            abs=1e-6)
        assert info.margin_free == pytest.approx(info.equity - info.margin, abs=1e-6)
        assert info.profit == pytest.approx(sum(p.profit for p in positions), abs=1e-6)
        # the balance is the sum of every deal's profit (the deposit included)
        assert info.balance == pytest.approx(sum(d.profit for d in all_deals(term)),
                                             abs=1e-6)
        if info.margin:
            assert info.margin_level > 50  # otherwise the stop-out would have acted
        else:
            assert info.margin_level == 0.0


def test_a_restarted_demo_terminal_never_reissues_a_ticket():
    """A real server never reissues a ticket: the bridge's terminal seeds its counter from
    the clock, so one started after another issues only higher tickets."""
    import time as clock

    from brokers.sim.runtime import build_demo_terminal

    first, _ = build_demo_terminal(bar_seconds=3600, manual=True, members=1, start_bar=0,
                                   bot=False)
    login = first.sim_logins()[0]
    issued = [first.sim_open(login, "EURUSD", "buy", "0.01") for _ in range(5)]
    clock.sleep(0.01)
    second, _ = build_demo_terminal(bar_seconds=3600, manual=True, members=1, start_bar=0,
                                    bot=False)
    again = second.sim_open(login, "EURUSD", "buy", "0.01")
    assert again > max(issued)
    assert min(issued) > 1_000_000_000_000  # milliseconds since 1970, not 1,000,001
