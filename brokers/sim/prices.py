"""Replayed EUR/USD H1 prices for the simulated terminal.

``EURUSD_H1.csv`` (beside this module) holds 5000 real hourly bars, times in UTC, prices are
the *bid* in USD per EUR with 5 digits. A ``ReplayClock`` maps elapsed time to a position in
the bar list: a bar counter and a fraction (0.0 .. 1.0) of the way through that bar. Within
one bar the price follows a piecewise linear path through the bar's four prices, so quotes
move between two syncs even inside one bar:

* bullish bar (close >= open): open -> low -> high -> close
* bearish bar (close <  open): open -> high -> low -> close

each leg taking one third of the hour. Server time is ``bar.time + fraction * 1 hour``.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

DEFAULT_CSV = Path(__file__).with_name("EURUSD_H1.csv")
BAR_DURATION = timedelta(hours=1)
PRICE_DIGITS = Decimal("0.00001")
_LEGS = 3  # open -> extreme -> extreme -> close


@dataclass(frozen=True, slots=True)
class Bar:
    """One H1 bar of bid prices (USD per EUR); ``time`` is the aware UTC opening time."""

    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    @property
    def bullish(self) -> bool:
        return self.close >= self.open

    def path(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """The four vertices of the intra-bar path, at fractions 0, 1/3, 2/3 and 1."""
        if self.bullish:
            return (self.open, self.low, self.high, self.close)
        return (self.open, self.high, self.low, self.close)

    def price_at(self, fraction: float) -> Decimal:
        """Bid at ``fraction`` (0.0 .. 1.0) of the bar, rounded to 5 digits (half up)."""
        f = min(max(fraction, 0.0), 1.0)
        vertices = self.path()
        leg = min(int(f * _LEGS), _LEGS - 1)
        within = Decimal(repr(f * _LEGS - leg))
        start, end = vertices[leg], vertices[leg + 1]
        return (start + (end - start) * within).quantize(PRICE_DIGITS, ROUND_HALF_UP)

    def range_between(self, f0: float, f1: float) -> tuple[Decimal, Decimal]:
        """Lowest and highest bid the path visits between fractions ``f0`` and ``f1``."""
        prices = [self.price_at(f0), self.price_at(f1)]
        vertices = self.path()
        for k in (1, 2):
            if f0 < k / _LEGS < f1:
                prices.append(vertices[k])
        return min(prices), max(prices)

    def shifted(self, delta: timedelta) -> Bar:
        """The same bar, ``delta`` later (used when a looping replay starts over)."""
        return Bar(self.time + delta, self.open, self.high, self.low, self.close, self.volume)


def load_bars(path: str | Path | None = None) -> list[Bar]:
    """Read bars from a CSV with columns time,open,high,low,close,volume (times in UTC)."""
    with open(path or DEFAULT_CSV, newline="") as handle:
        return [
            Bar(
                time=datetime.fromisoformat(row["time"]).replace(tzinfo=UTC),
                open=Decimal(row["open"]),
                high=Decimal(row["high"]),
                low=Decimal(row["low"]),
                close=Decimal(row["close"]),
                volume=int(row["volume"]),
            )
            for row in csv.DictReader(handle)
        ]


def bar_at(bars: list[Bar], counter: int) -> Bar:
    """The bar for an absolute bar counter; past the end of a looping replay the bars start
    over, shifted in time by whole replay spans so that server time never goes back."""
    cycle, index = divmod(counter, len(bars))
    if cycle == 0:
        return bars[index]
    span = bars[-1].time - bars[0].time + BAR_DURATION
    return bars[index].shifted(span * cycle)


class ReplayClock:
    """Maps elapsed time to (bar counter, fraction within the bar).

    ``bar_seconds`` real seconds make one bar. In ``manual`` mode time stands still and only
    ``advance()`` / ``advance_fraction()`` move it. Without ``loop`` the replay stops at the
    end of the last bar (counter ``n_bars - 1``, fraction 1.0); with ``loop`` the counter
    keeps growing and ``bar_at`` wraps it. ``n_bars`` is set by the terminal when left None.
    """

    def __init__(
        self,
        bar_seconds: float,
        start_index: int = 0,
        manual: bool = False,
        now: Callable[[], float] = time.monotonic,
        *,
        loop: bool = False,
        n_bars: int | None = None,
    ) -> None:
        if bar_seconds <= 0:
            raise ValueError("bar_seconds must be positive")
        self.bar_seconds = bar_seconds
        self.manual = manual
        self.loop = loop
        self.n_bars = n_bars
        self._now = now
        self._origin = now()
        self._offset = float(start_index)  # bars, added to the real-time elapsed bars

    def _raw(self) -> float:
        if self.manual:
            return self._offset
        return self._offset + (self._now() - self._origin) / self.bar_seconds

    def position(self) -> tuple[int, float]:
        """(bar counter, fraction 0.0 .. 1.0 within that bar)."""
        raw = self._raw()
        if self.n_bars is not None and not self.loop and raw >= self.n_bars:
            return self.n_bars - 1, 1.0
        counter = math.floor(raw)
        return counter, raw - counter

    @property
    def index(self) -> int:
        """Index into the bar list (wrapped when looping)."""
        counter = self.position()[0]
        return counter % self.n_bars if self.loop and self.n_bars else counter

    @property
    def fraction(self) -> float:
        return self.position()[1]

    def advance(self, bars: int = 1) -> None:
        """Jump to the *start* of the bar ``bars`` after the current one."""
        if bars < 0:
            raise ValueError("the replay never goes back")
        raw = self._raw()
        target = math.floor(raw) + bars
        if self.manual:
            self._offset = float(target)
        else:
            self._offset += target - raw

    def advance_fraction(self, fraction: float) -> None:
        """Move forward by ``fraction`` of a bar (may carry into the next bars)."""
        if fraction < 0:
            raise ValueError("the replay never goes back")
        self._offset += fraction
