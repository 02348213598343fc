"""Benchmark ``risk.sizing.size_position`` on a realistic setup.

    .venv/bin/python bench/sizing_bench.py [calls]

Pure Python, no Django, no database. It sizes one USDJPY setup in a USD account (10,000
balance, 3 % risk split 50/35/15, a tick value of 100 / 150 carried to 28 digits, so the
division and the rounding-down work are real) ``calls`` times (200,000 by default), best of
3 runs (``time.perf_counter``), and prints calls per second and µs per call beside the goal
of pure sizing under 1 ms per call. A rejected setup (volume below the minimum, which builds
its sentence) is timed too. Timings are printed, never asserted.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from risk.sizing import SizingInput, size_position  # noqa: E402  (needs the project root)

GOAL_US = 1000.0  # pure sizing under 1 ms

SETUP = SizingInput(
    balance=Decimal("10000.00"), free_margin=Decimal("9450.37"), risk_percent=Decimal("3.0"),
    splits=(Decimal("50"), Decimal("35"), Decimal("15")),
    margin_buffer_percent=Decimal("20"), side="buy",
    entry_price=Decimal("150.000"), stop_loss=Decimal("149.500"),
    take_profit=Decimal("151.500"), tick_size=Decimal("0.001"),
    tick_value=Decimal("100") / Decimal("150"), volume_min=Decimal("0.01"),
    volume_step=Decimal("0.01"), volume_max=Decimal("100"),
    margin_per_lot=Decimal("3333.33"),
)
REJECTED = replace(SETUP, balance=Decimal("500.00"))


def best_of(inp: SizingInput, calls: int, runs: int = 3) -> float:
    """Best seconds for ``calls`` sizings of ``inp``."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            size_position(inp)
        best = min(best, time.perf_counter() - start)
    return best


def report(label: str, inp: SizingInput, calls: int) -> None:
    result = size_position(inp)
    seconds = best_of(inp, calls)
    per_call_us = seconds / calls * 1e6
    verdict = "meets" if per_call_us < GOAL_US else "MISSES"
    print(f"{label}: {result.rejection_reason or 'approved'}, volumes "
          f"{' / '.join(str(v) for v in result.volume_entries)}")
    print(f"  {calls:,} calls in {seconds:.3f} s: {calls / seconds:,.0f} calls/s, "
          f"{per_call_us:.2f} µs per call; goal under {GOAL_US:,.0f} µs: {verdict} "
          f"({GOAL_US / per_call_us:,.0f}× headroom)")


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"size_position, best of 3, Python {sys.version.split()[0]}")
    report("approved USDJPY setup", SETUP, calls)
    report("rejected setup (below minimum)", REJECTED, calls // 4)


if __name__ == "__main__":
    main()
