"""Which accounts a mark-to-market pass asks for a priority read (``risk.marking``):
never again while the last ask is unanswered (at a mass gap a repeated ask took the first
read's lease and neither wrote anything), again once answered and ``repeat_seconds`` old,
or once the ask is older than ``answer_seconds`` (lost); at most ``batch`` per terminal,
most urgent first. Pure: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.gateway import Quote, Side
from guards.levels import DrawdownThresholds
from risk.marking import MarkInputs, marks_apply, may_ask
from risk.mtm import AccountFigures, HeldPosition, SymbolTerms

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(("requested", "answered", "expected"), [
    (None, None, True),  # never asked
    (None, ago(100), True),
    (ago(2), None, False),  # asked 2 s ago, never read since: waiting for the answer
    (ago(20), ago(60), False),  # asked 20 s ago, last read before the ask: still waiting
    (ago(31), ago(60), True),  # the ask is older than answer_seconds (30): lost, ask again
    (ago(3), ago(1), False),  # answered, but asked only 3 s ago (repeat_seconds 5)
    (ago(6), ago(1), True),  # answered, asked 6 s ago: may ask again
    (ago(6), ago(6), True),  # answered at the very moment of the ask counts as answered
])
def test_may_ask(requested, answered, expected):
    assert may_ask(requested=requested, answered=answered, now=NOW, repeat_seconds=5,
                   answer_seconds=30) is expected


THRESHOLDS = DrawdownThresholds(alert_percent=Decimal(15), max_percent=Decimal(20),
                                min_equity=Decimal(0))
#: a 1-lot EURUSD BUY opened at 1.10000 on a 100,000 USD account (peak 100,000 USD),
#: closed at bid 0.85000: (0.85000 - 1.10000) x 100,000 = -25,000 USD, equity 75,000 USD,
#: drawdown 25 % of the peak: beyond critical (20 %)
QUOTES = {"EURUSD": Quote(symbol="EURUSD", bid=Decimal("0.85000"), ask=Decimal("0.85002"),
                          time=NOW)}


def _inputs(terminal_of: dict[int, int | None]) -> MarkInputs:
    inputs = MarkInputs()
    inputs.terms[("S", "EURUSD")] = SymbolTerms(contract_size=Decimal(100_000),
                                                currency_profit="USD")
    for account_id, terminal_id in terminal_of.items():
        inputs.accounts.append(AccountFigures(
            account_id=account_id, server="S", currency="USD", balance=Decimal(100_000),
            credit=Decimal(0), peak_equity=Decimal(100_000)))
        inputs.positions.append(HeldPosition(account_id, account_id, "EURUSD", Side.BUY,
                                             Decimal(1), Decimal("1.10000"), Decimal(0)))
        inputs.thresholds[account_id] = THRESHOLDS
        inputs.terminals[account_id] = terminal_id
    return inputs


def _pass(inputs: MarkInputs, now: datetime):
    return marks_apply(inputs=inputs, quotes=QUOTES, now=now,
                       near_critical_points=Decimal(2), repeat_seconds=5, answer_seconds=30,
                       batch=4)


def test_at_most_batch_per_terminal_most_urgent_first_the_rest_next_pass():
    terminal_of = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 2, 8: 2}
    inputs = _inputs(terminal_of)
    result = _pass(inputs, NOW)
    assert {e.drawdown_percent for e in result.estimates.values()} == {Decimal("25.00")}
    assert {e.estimate.value for e in result.estimates.values()} == {"critical"}
    assert result.priority == {1: [1, 2, 3, 4], 2: [7, 8]}

    # one second later: the six asked wait for their reads; the other two are asked now
    inputs.requested = dict.fromkeys([1, 2, 3, 4, 7, 8], NOW)
    inputs.answered = dict.fromkeys(terminal_of, ago(60))
    assert _pass(inputs, NOW + timedelta(seconds=1)).priority == {1: [5, 6]}

    # accounts in a liquidation episode are read by its re-check, never asked
    inputs.liquidating = {5}
    assert _pass(inputs, NOW + timedelta(seconds=1)).priority == {1: [6]}
