"""Benchmark ``reconciliation.matching.reconcile`` at 1,000 / 10,000 / 100,000 positions.

    .venv/bin/python bench/matching_bench.py

Pure Python, no Django, no database. For each size n it builds n broker positions and n
expected trades resembling one busy account book (see ``build``):

- 70 % tagged matches (half of them already carry their ticket from an earlier cycle),
  with a partial fill every 10th and 30-point slippage every 7th;
- 20 % shape matches (comment lost, volume within 2 %, opened within a minute);
- 5 % manual positions (magic 0), each beside a bot trade that was closed at the broker
  (by "sl", "tp", "client" or "expert"; some stops gapped);
- 5 % unexpected bot positions (untagged, volume far off), each beside a pending trade
  (half young, half past the grace period).

Inputs are shuffled, so sorting is real work. It times one ``reconcile`` call per size (best
of 3, ``time.perf_counter``), prints ms per call and the growth between sizes (×10 in size
is ≈ ×10–×13 in time for n log n, ×100 for quadratic), and a verdict against the goal of
under 100 ms for 10,000. Timings are printed, never asserted.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciliation.matching import (  # noqa: E402  (needs the project root on sys.path)
    Closed,
    Expected,
    Held,
    Tolerances,
    reconcile,
)

SIZES = (1_000, 10_000, 100_000)
REPEATS = 3
GOAL_MS_AT_10K = 100.0
BOT = 20_240_423
T0 = datetime(2017, 4, 21, 0, 0, tzinfo=UTC)
SYMBOLS = {  # symbol → (point, a typical price)
    "EURUSD": (Decimal("0.00001"), Decimal("1.07200")),
    "GBPUSD": (Decimal("0.00001"), Decimal("1.28000")),
    "USDJPY": (Decimal("0.001"), Decimal("109.500")),
    "AUDUSD": (Decimal("0.00001"), Decimal("0.75300")),
    "USDCHF": (Decimal("0.00001"), Decimal("0.99800")),
    "XAUUSD": (Decimal("0.01"), Decimal("1284.50")),
}
TOLERANCES = Tolerances(bot_magic=BOT, points={s: p for s, (p, _) in SYMBOLS.items()})
CLOSE_REASONS = ("sl", "tp", "client", "expert")


def build(n: int, seed: int = 7) -> tuple[list[Expected], list[Held], list[Closed], datetime]:
    """n positions, n expected trades and the closing records, shuffled."""
    rnd = random.Random(seed)
    names = list(SYMBOLS)
    expected: list[Expected] = []
    held: list[Held] = []
    closed: list[Closed] = []
    now = T0 + timedelta(seconds=7 * n + 120)
    for i in range(n):
        symbol = names[i % len(names)]
        point, base = SYMBOLS[symbol]
        side = "buy" if rnd.random() < 0.5 else "sell"
        sign = 1 if side == "buy" else -1
        volume = Decimal(rnd.randint(1, 300)) / 100
        price = base + rnd.randint(-2000, 2000) * point
        sl = price - sign * 300 * point
        tp = price + sign * 600 * point
        created = T0 + timedelta(seconds=7 * i)  # one trade every 7 s across the book
        opened = created + timedelta(seconds=rnd.randint(0, 60))
        tag = f"bo-{i:08x}"
        ticket = 10_000_000 + i
        slot = i % 20

        def trade(status: str = "open", ticket_known: int | None = None,
                  *, when: datetime = created, i=i, symbol=symbol, side=side, volume=volume,
                  price=price, sl=sl, tp=tp, tag=tag) -> Expected:
            return Expected(id=i + 1, symbol=symbol, side=side, volume=volume,
                            requested_price=price, sl=sl, tp=tp, magic=BOT, tag=tag,
                            status=status, created_at=when, ticket=ticket_known)

        if slot < 14:  # tagged; half matched in an earlier cycle already
            fill = volume / 2 if i % 10 == 0 and volume > Decimal("0.01") else volume
            fill_price = price + sign * 30 * point if i % 7 == 0 else price
            expected.append(trade(ticket_known=ticket if i % 2 == 0 else None))
            held.append(Held(ticket, symbol, side, fill, fill_price, sl, tp, BOT, tag, opened))
        elif slot < 18:  # shape: the broker lost the comment
            fill = (volume * Decimal("1.02")).quantize(Decimal("0.01"))
            expected.append(trade())
            held.append(Held(ticket, symbol, side, fill, price, sl, tp, BOT, "", opened))
        elif slot == 18:  # a person's position; beside it a bot trade closed at the broker
            held.append(Held(ticket, symbol, side, volume, price, None, None, 0, "", opened))
            closed_ticket = 90_000_000 + i
            reason = CLOSE_REASONS[(i // 20) % len(CLOSE_REASONS)]
            gapped = reason == "sl" and i % 3 == 0
            close = sl - sign * (200 if gapped else 2) * point
            expected.append(trade(ticket_known=closed_ticket))
            closed.append(Closed(closed_ticket, symbol, side, reason, close, sl,
                                 opened + timedelta(hours=1)))
        else:  # an unclaimed bot position; beside it a pending trade, young or stale
            held.append(Held(ticket, symbol, side, volume * 5 + 1, price, sl, tp, BOT,
                             "[sl 1.00000]", opened))
            young = i % 40 == 19
            expected.append(trade("pending", when=now - timedelta(seconds=10) if young
                                  else created))
    rnd.shuffle(expected)
    rnd.shuffle(held)
    rnd.shuffle(closed)
    return expected, held, closed, now


def time_one(n: int) -> tuple[float, Counter]:
    expected, held, closed, now = build(n)
    best = float("inf")
    result = None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = reconcile(expected=expected, held=held, closed=closed, now=now,
                           tolerances=TOLERANCES)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    counts = Counter(str(d.kind) for d in result.divergences)
    counts["matched"] = len(result.matches)
    counts["closed"] = len(result.closed)
    return best * 1000, counts


def main() -> int:
    print(f"reconcile(): best of {REPEATS}, n positions + n expected trades "
          f"(+ closing records)")
    timings: dict[int, float] = {}
    previous: int | None = None
    for n in SIZES:
        ms, counts = time_one(n)
        timings[n] = ms
        growth = f"  ×{ms / timings[previous]:.1f} vs {previous:,}" if previous else ""
        goal = f"  (goal < {GOAL_MS_AT_10K:.0f} ms)" if n == 10_000 else ""
        print(f"n = {n:>7,}: {ms:9.1f} ms per call{goal}{growth}")
        summary = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
        print(f"             {summary}")
        previous = n

    ratios = [timings[b] / timings[a] for a, b in pairwise(SIZES)]
    # ×10 in size: ≈ ×10–×13 for n log n; allow noise up to ×20, far below quadratic's ×100.
    scales = all(r < 20 for r in ratios)
    fast = timings[10_000] < GOAL_MS_AT_10K
    print(f"verdict: {'OK' if scales and fast else 'NOT OK'}: "
          f"10,000 in {timings[10_000]:.1f} ms "
          f"({'under' if fast else 'OVER'} the {GOAL_MS_AT_10K:.0f} ms goal); growth "
          + ", ".join(f"×{r:.1f}" for r in ratios)
          + f" per ×10 in size ({'n log n' if scales else 'worse than n log n'}; "
          "quadratic would be ×100)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
