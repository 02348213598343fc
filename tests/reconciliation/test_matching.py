"""Reconciliation matching: hand-written broker/expected sets for every divergence kind,
then hypothesis properties (one-to-one, order-independent, everything accounted for).

Pure functions only: no database, no Django models. Every expected outcome is explained in
the comment beside its case. EURUSD / USDJPY points are 0.00001 / 0.001; the default
tolerances are 5 % volume, 20 points slippage, 2 points SL/TP, 50 points gap, a 5 minute
open window and a 60 second pending grace.
"""

from __future__ import annotations

import csv
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.matching import (
    Closed,
    Expected,
    Held,
    Kind,
    Result,
    Tolerances,
    extract_tag,
    reconcile,
)

BOT = 4242
T0 = datetime(2017, 4, 21, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
TOL = Tolerances(bot_magic=BOT, points={"EURUSD": D("0.00001"), "USDJPY": D("0.001")})
EURUSD_CSV = Path(__file__).resolve().parents[2] / "brokers" / "sim" / "EURUSD_H1.csv"


def exp(eid: int = 1, *, symbol: str = "EURUSD", side: str = "buy", volume: str = "1.00",
        requested: str | None = "1.07000", sl: str | None = "1.06500",
        tp: str | None = "1.08000", tag: str | None = None, status: str = "open",
        created: timedelta = timedelta(0), ticket: int | None = None) -> Expected:
    return Expected(
        id=eid, symbol=symbol, side=side, volume=D(volume),
        requested_price=None if requested is None else D(requested),
        sl=None if sl is None else D(sl), tp=None if tp is None else D(tp),
        magic=BOT, tag=tag or f"bo-t{eid}", status=status, created_at=T0 + created,
        ticket=ticket)


def pos(ticket: int = 101, *, symbol: str = "EURUSD", side: str = "buy", volume: str = "1.00",
        price: str = "1.07000", sl: str | None = "1.06500", tp: str | None = "1.08000",
        magic: int = BOT, comment: str = "", opened: timedelta = timedelta(0)) -> Held:
    return Held(
        ticket=ticket, symbol=symbol, side=side, volume=D(volume), price_open=D(price),
        sl=None if sl is None else D(sl), tp=None if tp is None else D(tp), magic=magic,
        comment=comment, opened_at=T0 + opened)


def shut(ticket: int = 101, *, reason: str, close: str | None, sl: str | None = "1.06500",
         side: str = "buy", symbol: str = "EURUSD",
         closed_at: datetime = T0 + timedelta(minutes=8)) -> Closed:
    return Closed(ticket=ticket, symbol=symbol, side=side, reason=reason,
                  close_price=None if close is None else D(close),
                  sl=None if sl is None else D(sl), closed_at=closed_at)


def run(expected=(), held=(), closed=(), now=NOW, tolerances=TOL) -> Result:
    return reconcile(expected=list(expected), held=list(held), closed=list(closed), now=now,
                     tolerances=tolerances)


def keys(result: Result) -> list[str]:
    return sorted(d.key for d in result.divergences)


def figures(result: Result, key: str) -> dict[str, str]:
    (found,) = [d for d in result.divergences if d.key == key]
    return found.figures


# --------------------------------------------------------------------------- extract_tag

@pytest.mark.parametrize(("comment", "tag"), [
    ("bo-a1", "bo-a1"),
    ("", None),  # an empty comment: nothing to read
    (None, None),  # defensive: a broker row with no comment at all
    ("bo-a1 [sl 1.08000]", "bo-a1"),  # the broker appended the stop that fired
    ("bo-a1[sl 1.08000]", "bo-a1"),  # ... or glued it on without a space
    ("[tp 1.09000]", None),  # the broker replaced the comment: the tag is lost
    ("copy of bo-a1", "bo-a1"),  # the first word starting "bo-", wherever it is
    ("bo-first bo-second", "bo-first"),
    ("robo-x", None),  # "bo-" must start the word
    ("bo-", None),  # a bare prefix names no trade
    ("  bo-a1\t", "bo-a1"),  # surrounding whitespace
])
def test_extract_tag(comment, tag):
    assert extract_tag(comment) == tag


# ------------------------------------------------------------------------ table: matches

def test_tag_match_with_partial_fill():
    # The position carries the trade's tag, so it matches whatever its volume; 0.60 of 1.00
    # is 40 % short, far beyond 5 %: partial_fill. Price and stops agree: nothing else.
    r = run([exp(1, tag="bo-a1")], [pos(101, volume="0.60", comment="bo-a1")])
    assert r.matches == {1: 101}
    assert keys(r) == ["partial_fill:e1"]
    assert figures(r, "partial_fill:e1") == {
        "tag": "bo-a1", "ticket": "101", "symbol": "EURUSD", "side": "buy",
        "expected_volume": "1.00", "actual_volume": "0.60", "difference_percent": "-40.00"}


def test_tag_match_with_overfill_is_volume_mismatch():
    # 1.10 for 1.00 is +10 %: above the expected volume beyond 5 %.
    r = run([exp(1)], [pos(101, volume="1.10", comment="bo-t1")])
    assert r.matches == {1: 101}
    assert keys(r) == ["volume_mismatch:e1"]
    assert figures(r, "volume_mismatch:e1")["difference_percent"] == "10.00"


@pytest.mark.parametrize("volume", ["0.95", "1.05", "0.97"])
def test_tag_match_within_volume_tolerance_is_clean(volume):
    # Exactly 5 % off is not *beyond* 5 %; 3 % is well inside.
    r = run([exp(1)], [pos(101, volume=volume, comment="bo-t1")])
    assert r.matches == {1: 101}
    assert r.divergences == []


def test_tag_match_ignores_time_and_other_candidates():
    # The tag wins even an hour late and even though trade 2 has the exact same shape and
    # time: a tag is a direct claim, and trade 2 is then missing.
    r = run([exp(1, created=timedelta(hours=-1)), exp(2)],
            [pos(101, comment="bo-t1 [sl 1.06500]")])
    assert r.matches == {1: 101}
    assert keys(r) == ["missing:e2"]


def test_shape_match_within_volume_and_window():
    # No tag (the broker dropped the comment). Same symbol and side, 0.96 vs 1.00 is 4 %
    # (≤ 5 %), opened 4 minutes after the trade was created (≤ 5 min): a shape match, and
    # within tolerance it is not a partial fill.
    r = run([exp(1)], [pos(101, volume="0.96", opened=timedelta(minutes=4))])
    assert r.matches == {1: 101}
    assert r.divergences == []


def test_shape_match_at_the_window_edge():
    # Exactly 5 minutes (before or after) is still within the window.
    r = run([exp(1), exp(2, created=timedelta(minutes=10))],
            [pos(101, opened=timedelta(minutes=-5)), pos(102, opened=timedelta(minutes=15))])
    assert r.matches == {1: 101, 2: 102}
    assert r.divergences == []


def test_shape_just_outside_volume_tolerance():
    # 0.949 vs 1.000 is 5.1 % off: not a shape candidate. The position is the bot's but no
    # trade claims it (unexpected) and the open trade has no position (missing).
    r = run([exp(1, volume="1.000")], [pos(101, volume="0.949", opened=timedelta(minutes=1))])
    assert r.matches == {}
    assert keys(r) == ["missing:e1", "unexpected:t101"]


def test_shape_just_outside_time_window():
    # 5 min 1 s after creation: outside open_window, so no shape match.
    r = run([exp(1)], [pos(101, opened=timedelta(minutes=5, seconds=1))])
    assert r.matches == {}
    assert keys(r) == ["missing:e1", "unexpected:t101"]


def test_shape_needs_same_symbol_and_side():
    # Same volume and time, but a sell and a USDJPY position are other shapes.
    r = run([exp(1)], [pos(101, side="sell"), pos(102, symbol="USDJPY", price="110.000",
                                                   sl="109.000", tp="111.000")])
    assert r.matches == {}
    assert keys(r) == ["missing:e1", "unexpected:t101", "unexpected:t102"]


def test_shape_prefers_closest_volume_then_time_then_id():
    # Position 101 (0.97) could take trade 1 (1.00, 3 % off) or trade 2 (0.97, exact): the
    # closest volume wins → 2. Position 102 (1.00) then has trades 1 and 3, both exact
    # volume; trade 3 is 1 minute away, trade 1 two minutes → 3. Trade 1 is left missing.
    r = run([exp(1), exp(2, volume="0.97"), exp(3, created=timedelta(minutes=1))],
            [pos(101, volume="0.97", opened=timedelta(minutes=1)),
             pos(102, opened=timedelta(minutes=2))])
    assert r.matches == {2: 101, 3: 102}
    assert keys(r) == ["missing:e1"]


def test_shape_tie_goes_to_lowest_id():
    # Two identical trades: the position takes the lower id; the other is missing.
    r = run([exp(7), exp(3)], [pos(101)])
    assert r.matches == {3: 101}
    assert keys(r) == ["missing:e7"]


def test_tagged_position_with_unknown_tag_does_not_fall_back_to_shape():
    # The tag names no trade passed in (say, one the bot already closed). The tag is a
    # claim, not a hint, so the position is unexpected even though trade 1 has its shape.
    r = run([exp(1)], [pos(101, comment="bo-gone")])
    assert r.matches == {}
    assert keys(r) == ["missing:e1", "unexpected:t101"]


def test_tag_on_another_symbol_is_not_trusted():
    # Tag bo-t1 on a USDJPY position while trade 1 is EURUSD: refused (a person should look).
    r = run([exp(1)], [pos(101, symbol="USDJPY", price="110.000", sl="109.000",
                           tp="111.000", comment="bo-t1")])
    assert r.matches == {}
    assert keys(r) == ["missing:e1", "unexpected:t101"]


# ------------------------------------------------------------------ table: price, stops

def test_slippage_beyond_tolerance():
    # Requested 1.07000, filled 1.07025: 25 points > 20.
    r = run([exp(1)], [pos(101, price="1.07025", comment="bo-t1")])
    assert keys(r) == ["slippage:e1"]
    assert figures(r, "slippage:e1")["difference_points"] == "25"
    assert figures(r, "slippage:e1")["requested_price"] == "1.07000"
    assert figures(r, "slippage:e1")["price_open"] == "1.07025"


@pytest.mark.parametrize("price", ["1.07020", "1.06980", "1.07005"])
def test_slippage_within_tolerance(price):
    # 20 points either way is not beyond 20; 5 points is nothing.
    r = run([exp(1)], [pos(101, price=price, comment="bo-t1")])
    assert r.divergences == []


def test_slippage_negative_and_on_a_yen_pair():
    # USDJPY point is 0.001: 110.000 requested, 109.970 filled → −30 points.
    r = run([exp(1, symbol="USDJPY", requested="110.000", sl="109.000", tp="111.000")],
            [pos(101, symbol="USDJPY", price="109.970", sl="109.000", tp="111.000",
                 comment="bo-t1")])
    assert keys(r) == ["slippage:e1"]
    assert figures(r, "slippage:e1")["difference_points"] == "-30"


def test_no_requested_price_no_slippage():
    # A market order sent without a requested price: any fill price is fine.
    r = run([exp(1, requested=None)], [pos(101, price="1.09000", comment="bo-t1")])
    assert r.divergences == []


def test_sl_mismatch():
    # SL 1.06503 vs 1.06500: 3 points > 2 → sl mismatched; TP equal.
    r = run([exp(1)], [pos(101, sl="1.06503", comment="bo-t1")])
    assert keys(r) == ["sl_tp_mismatch:e1"]
    f = figures(r, "sl_tp_mismatch:e1")
    assert (f["mismatched"], f["expected_sl"], f["actual_sl"]) == ("sl", "1.06500", "1.06503")


def test_sl_within_stop_tolerance():
    # 2 points off is not beyond 2.
    r = run([exp(1)], [pos(101, sl="1.06502", tp="1.07998", comment="bo-t1")])
    assert r.divergences == []


def test_tp_missing_at_the_broker():
    # The trade wants TP 1.08000; the position has none (a set value vs None).
    r = run([exp(1)], [pos(101, tp=None, comment="bo-t1")])
    assert keys(r) == ["sl_tp_mismatch:e1"]
    f = figures(r, "sl_tp_mismatch:e1")
    assert (f["mismatched"], f["expected_tp"], f["actual_tp"]) == ("tp", "1.08000", "")


def test_stop_set_at_the_broker_but_not_expected():
    # No SL expected, one present: also a mismatch. Both wrong → one divergence naming both.
    r = run([exp(1, sl=None)], [pos(101, tp="1.09000", comment="bo-t1")])
    assert keys(r) == ["sl_tp_mismatch:e1"]
    assert figures(r, "sl_tp_mismatch:e1")["mismatched"] == "sl,tp"


def test_one_match_several_divergences():
    # Tagged, 0.50 of 1.00 (partial), 1.07040 for 1.07000 (40 points slippage), no TP.
    r = run([exp(1)], [pos(101, volume="0.50", price="1.07040", tp=None, comment="bo-t1")])
    assert r.matches == {1: 101}
    assert keys(r) == ["partial_fill:e1", "sl_tp_mismatch:e1", "slippage:e1"]


# ------------------------------------------------------------------- table: by ticket

def test_ticket_matched_trade_still_held():
    # Trade 1 was matched to 101 in an earlier cycle. The broker still holds 101 (comment
    # now rewritten, volume unchanged): matched by ticket, so no missing and no unexpected.
    r = run([exp(1, ticket=101)], [pos(101, comment="[sl 1.06500]",
                                       opened=timedelta(hours=3))])
    assert r.matches == {1: 101}
    assert r.divergences == []
    assert r.closed == {}


def test_ticket_beats_tag_and_gets_checked():
    # Trade 1 holds ticket 101. Position 101 carries trade 2's tag, but the ticket is
    # matched first; position 101 is partially filled (0.50 of 1.00), checked like any
    # match. Trade 2 then has no position: missing.
    r = run([exp(1, ticket=101), exp(2)], [pos(101, volume="0.50", comment="bo-t2")])
    assert r.matches == {1: 101}
    assert keys(r) == ["missing:e2", "partial_fill:e1"]


def test_ticket_gone_without_closing_record_is_missing():
    # Trade 1 had ticket 101; the broker neither holds it nor reports closing it. Its
    # figures name the ticket. The untagged position 102 of the same shape is not taken:
    # a trade with a ticket never shape-matches.
    r = run([exp(1, ticket=101)], [pos(102)])
    assert r.matches == {}
    assert keys(r) == ["missing:e1", "unexpected:t102"]
    assert figures(r, "missing:e1")["ticket"] == "101"


def test_two_trades_claiming_one_ticket():
    # A data error: the lowest id gets the ticket, the other is missing, never both.
    r = run([exp(2, ticket=101), exp(1, ticket=101)], [pos(101)])
    assert r.matches == {1: 101}
    assert keys(r) == ["missing:e2"]


@pytest.mark.parametrize("reason", ["sl", "tp", "so", "client", "other", "unknown"])
def test_closed_by_the_broker_or_a_person(reason):
    # Position 101 of trade 1 closed for a reason other than the bot's own: reported once
    # as closed_externally with that reason; the trade is over (Result.closed). For "sl" the
    # close at 1.06497 is 3 points below the stop, well within the 50-point gap tolerance.
    record = shut(101, reason=reason, close="1.06497")
    r = run([exp(1, ticket=101)], closed=[record])
    assert r.matches == {}
    assert r.closed == {1: record}
    assert keys(r) == ["closed_externally:e1"]
    assert figures(r, "closed_externally:e1") == {
        "tag": "bo-t1", "ticket": "101", "symbol": "EURUSD", "side": "buy", "reason": reason,
        "close_price": "1.06497", "closed_at": "2017-04-21T12:08:00+00:00"}
    assert all(d.is_event for d in r.divergences)


def test_closed_by_the_bot_itself():
    # "expert" is the bot's own close: the trade is over, no divergence.
    record = shut(101, reason="expert", close="1.07300")
    r = run([exp(1, ticket=101)], closed=[record])
    assert r.closed == {1: record}
    assert r.divergences == []


def test_closed_without_a_price():
    # A closing record without a price (and thus no gap test) still reports the close.
    r = run([exp(1, ticket=101)], closed=[shut(101, reason="sl", close=None)])
    assert keys(r) == ["closed_externally:e1"]
    assert figures(r, "closed_externally:e1")["close_price"] == ""


def _eurusd_open(when: str) -> D:
    with EURUSD_CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["time"] == when:
                return D(row["open"])
    raise LookupError(when)


def test_weekend_gap_on_a_sell_stop():
    # Real figures (brokers/sim/EURUSD_H1.csv): Friday 2017-04-21 closed near 1.0725; the
    # market reopened Sunday 2017-04-23 21:00 at bid 1.08930 (French election gap). A sell
    # with SL 1.08000 is bought back at the ask: 1.08930 + 12 points spread = 1.08942,
    # 0.00942 / 0.00001 = 942 points beyond the stop, > 50 → closed_externally + gap.
    bid = _eurusd_open("2017-04-23 21:00:00")
    assert bid == D("1.08930")
    ask = bid + 12 * D("0.00001")
    record = shut(101, reason="sl", close=str(ask), sl="1.08000", side="sell",
                  closed_at=datetime(2017, 4, 23, 21, tzinfo=UTC))
    trade = exp(1, side="sell", requested="1.07268", sl="1.08000", tp="1.06000", ticket=101)
    r = run([trade], closed=[record], now=datetime(2017, 4, 23, 21, 1, tzinfo=UTC))
    assert r.closed == {1: record}
    assert keys(r) == ["closed_externally:e1", "gap:e1"]
    assert figures(r, "closed_externally:e1")["close_price"] == "1.08942"
    gap = figures(r, "gap:e1")
    assert (gap["sl"], gap["close_price"], gap["gap_points"]) == ("1.08000", "1.08942", "942")
    assert all(d.is_event for d in r.divergences)


def test_gap_on_a_buy_stop_and_the_threshold():
    # A buy stopped at SL 1.06500 is sold below it: 1.06400 is 100 points beyond → gap;
    # 1.06450 is exactly 50 points → not beyond 50 → closed_externally only.
    r = run([exp(1, ticket=101), exp(2, ticket=102)],
            closed=[shut(101, reason="sl", close="1.06400"),
                    shut(102, reason="sl", close="1.06450")])
    assert keys(r) == ["closed_externally:e1", "closed_externally:e2", "gap:e1"]
    assert figures(r, "gap:e1")["gap_points"] == "100"


def test_stop_filled_better_than_the_stop_is_no_gap():
    # A sell stopped at 1.07900 with SL 1.08000 (closed on the good side): not a gap.
    r = run([exp(1, side="sell", sl="1.08000", ticket=101)],
            closed=[shut(101, reason="sl", close="1.07900", sl="1.08000", side="sell")])
    assert keys(r) == ["closed_externally:e1"]


def test_gap_falls_back_to_the_trade_sl():
    # The closing record lacks the SL: the trade's own SL (1.06500) is used.
    r = run([exp(1, ticket=101)], closed=[shut(101, reason="sl", close="1.06000", sl=None)])
    assert keys(r) == ["closed_externally:e1", "gap:e1"]
    assert figures(r, "gap:e1")["gap_points"] == "500"


def test_take_profit_beyond_is_not_a_gap():
    # Gaps are only about stop losses: a TP close far away is just closed_externally.
    r = run([exp(1, ticket=101)], closed=[shut(101, reason="tp", close="1.05000")])
    assert keys(r) == ["closed_externally:e1"]


# --------------------------------------------------------------- table: missing, extra

def test_young_pending_is_not_a_divergence():
    # Sent 30 s ago, not at the broker yet: within the 60 s grace → nothing.
    r = run([exp(1, status="pending")], now=T0 + timedelta(seconds=30))
    assert r.matches == {} and r.divergences == [] and r.closed == {}


def test_pending_at_exactly_the_grace_is_still_young():
    # "Longer than" pending_grace: 60 s exactly is not yet.
    r = run([exp(1, status="pending")], now=T0 + timedelta(seconds=60))
    assert r.divergences == []


def test_old_pending_is_missing():
    # Sent 61 s ago and still nowhere: missing.
    r = run([exp(1, status="pending")], now=T0 + timedelta(seconds=61))
    assert keys(r) == ["missing:e1"]
    assert figures(r, "missing:e1")["status"] == "pending"
    assert figures(r, "missing:e1")["ticket"] == ""


def test_open_trade_without_position_is_missing():
    # Status open, no ticket, no position: missing at once, no grace.
    r = run([exp(1)], now=T0)
    assert keys(r) == ["missing:e1"]


def test_manual_position():
    # Magic 0 is a person's: reported as manual, and never claimed by the bot's trade even
    # though it has the trade's exact shape (the trade is missing instead).
    r = run([exp(1)], [pos(101, magic=0, comment="my trade")])
    assert r.matches == {}
    assert keys(r) == ["manual:t101", "missing:e1"]
    f = figures(r, "manual:t101")
    assert (f["ticket"], f["magic"], f["comment"], f["volume"]) == ("101", "0", "my trade",
                                                                     "1.00")


def test_manual_position_with_a_bot_tag_is_still_manual():
    # A person copied a bot comment: the tag is read only on bot-magic positions.
    r = run([exp(1)], [pos(101, magic=0, comment="bo-t1")])
    assert keys(r) == ["manual:t101", "missing:e1"]


def test_bot_position_without_a_claim_is_unexpected():
    # The bot's magic, no tag, nothing to shape-match: unexpected.
    r = run([], [pos(101)])
    assert keys(r) == ["unexpected:t101"]
    d = r.divergences[0]
    assert (d.kind, d.ticket, d.expected_id) == (Kind.UNEXPECTED, 101, None)
    assert not d.is_event


def test_divergence_keys_are_stable_across_cycles():
    # The same facts one cycle later (another "now", new record objects) give the same keys.
    trades = [exp(1), exp(2, status="pending")]
    first = run(trades, [pos(101, volume="0.5", comment="bo-t1"), pos(102, magic=0)],
                now=T0 + timedelta(minutes=2))
    later = run(trades, [pos(101, volume="0.5", comment="bo-t1"), pos(102, magic=0)],
                now=T0 + timedelta(minutes=3))
    assert keys(first) == keys(later) == ["manual:t102", "missing:e2", "partial_fill:e1"]


def test_figures_are_strings():
    r = run([exp(1), exp(2, ticket=201)], [pos(101, volume="0.1", price="1.08", tp=None,
                                               comment="bo-t1"), pos(102, magic=0)],
            closed=[shut(201, reason="sl", close="1.05")])
    assert len(r.divergences) >= 5
    for d in r.divergences:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.figures.items())


# ---------------------------------------------------------------------------- properties

SYMBOLS = ["EURUSD", "USDJPY"]
REASONS = ["expert", "sl", "tp", "so", "client", "other", "unknown"]
TICKETS = st.integers(min_value=1, max_value=30)
VOLUMES = st.sampled_from([D("0.10"), D("0.50"), D("0.95"), D("0.97"), D("1.00"), D("1.04"),
                           D("1.06")])
PRICES = st.sampled_from([None, D("1.07000"), D("1.07010"), D("1.07030")])
MINUTES = st.integers(min_value=0, max_value=20).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def scenarios(draw):
    """Small, dense worlds: few symbols, sides, volumes and minutes, so tags, shapes,
    tickets and window edges collide often."""
    ids = draw(st.lists(st.integers(min_value=1, max_value=40), unique=True, max_size=12))
    expected = [
        Expected(
            id=i, symbol=draw(st.sampled_from(SYMBOLS)), side=draw(st.sampled_from(["buy",
                                                                                    "sell"])),
            volume=draw(VOLUMES), requested_price=draw(PRICES), sl=draw(PRICES),
            tp=draw(PRICES), magic=BOT, tag=f"bo-t{i}",
            status=draw(st.sampled_from(["open", "pending"])), created_at=draw(MINUTES),
            ticket=draw(st.none() | TICKETS))
        for i in ids]
    tickets = draw(st.lists(TICKETS, unique=True, max_size=14))
    split = draw(st.integers(min_value=0, max_value=len(tickets)))
    comments = st.sampled_from(["", "[sl 1.07000]", "manual"]) | st.integers(
        min_value=0, max_value=45).map(lambda n: f"bo-t{n} [tp 1.08]")
    held = [
        Held(ticket=t, symbol=draw(st.sampled_from(SYMBOLS)),
             side=draw(st.sampled_from(["buy", "sell"])), volume=draw(VOLUMES),
             price_open=draw(PRICES.filter(lambda p: p is not None)), sl=draw(PRICES),
             tp=draw(PRICES), magic=draw(st.sampled_from([BOT, BOT, 0, 77])),
             comment=draw(comments), opened_at=draw(MINUTES))
        for t in tickets[:split]]
    closed = [
        Closed(ticket=t, symbol=draw(st.sampled_from(SYMBOLS)),
               side=draw(st.sampled_from(["buy", "sell"])), reason=draw(st.sampled_from(REASONS)),
               close_price=draw(PRICES), sl=draw(PRICES), closed_at=draw(MINUTES))
        for t in tickets[split:]]
    now = T0 + timedelta(minutes=draw(st.integers(min_value=0, max_value=25)))
    return expected, held, closed, now


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_one_to_one(world):
    expected, held, closed, now = world
    r = run(expected, held, closed, now)
    tickets = list(r.matches.values())
    assert len(tickets) == len(set(tickets)), "a position matched to two trades"
    assert set(tickets) <= {h.ticket for h in held}
    # A trade is matched, or closed, never both (a dict already gives one ticket per trade).
    assert not set(r.matches) & set(r.closed)
    closing = [c.ticket for c in r.closed.values()]
    assert len(closing) == len(set(closing)), "a closing record given to two trades"
    assert len({d.key for d in r.divergences}) == len(r.divergences)


@PROPERTY_SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_property_input_order_does_not_matter(world, rnd: random.Random):
    expected, held, closed, now = world
    r = run(expected, held, closed, now)
    shuffled = [rnd.sample(seq, len(seq)) for seq in (expected, held, closed)]
    s = run(*shuffled, now)
    assert s.matches == r.matches
    assert sorted(d.key for d in s.divergences) == sorted(d.key for d in r.divergences)
    assert s == r  # stronger: same divergences, figures and order


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_every_position_accounted_for(world):
    expected, held, closed, now = world
    r = run(expected, held, closed, now)
    matched = set(r.matches.values())
    for h in held:
        extra = [d for d in r.divergences
                 if d.kind in (Kind.UNEXPECTED, Kind.MANUAL) and d.ticket == h.ticket]
        if h.ticket in matched:
            assert extra == []
        else:
            assert len(extra) == 1
            assert extra[0].kind == (Kind.UNEXPECTED if h.magic == BOT else Kind.MANUAL)


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_every_trade_accounted_for(world):
    expected, held, closed, now = world
    r = run(expected, held, closed, now)
    missing = {d.expected_id for d in r.divergences if d.kind == Kind.MISSING}
    for e in expected:
        young = (e.status == "pending" and e.ticket is None
                 and now - e.created_at <= TOL.pending_grace)
        places = [e.id in r.matches, e.id in r.closed, e.id in missing]
        if young and not any(places):
            continue
        assert places.count(True) == 1, (e, places)


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_matches_respect_the_rules(world):
    # Every match is explained: by ticket, by tag (bot magic), or by shape (bot magic,
    # untagged, within volume and window).
    expected, held, closed, now = world
    r = run(expected, held, closed, now)
    by_id = {e.id: e for e in expected}
    by_ticket = {h.ticket: h for h in held}
    for eid, ticket in r.matches.items():
        e, h = by_id[eid], by_ticket[ticket]
        if e.ticket is not None:
            assert e.ticket == ticket
            continue
        assert h.magic == BOT and (h.symbol, h.side) == (e.symbol, e.side)
        tag = extract_tag(h.comment)
        if tag is not None:
            assert tag == e.tag
        else:
            assert abs(h.volume - e.volume) * 100 <= TOL.volume_percent * e.volume
            assert abs(h.opened_at - e.created_at) <= TOL.open_window


def test_shuffle_example_with_replace():
    # A concrete order-independence check on a crowded minute (all shapes equal).
    trades = [exp(i) for i in range(1, 6)]
    positions = [replace(pos(100 + i), opened_at=T0) for i in range(1, 4)]
    forward = run(trades, positions)
    backward = run(trades[::-1], positions[::-1])
    assert forward == backward
    assert forward.matches == {1: 101, 2: 102, 3: 103}
    assert keys(forward) == ["missing:e4", "missing:e5"]
