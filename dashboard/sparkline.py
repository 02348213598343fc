"""An SVG sparkline from a downsampled series: pure arithmetic, no database.

The page draws it as its own inline ``<polyline>`` (no chart library, no CDN), as the mini
app draws its equity curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


def sparkline_points(series: Sequence[tuple[int, Decimal]], *, buckets: int, width: float,
                     height: float, pad: float = 2.0) -> str:
    """``"x,y x,y …"`` for an SVG polyline of ``width`` × ``height`` user units.

    ``series`` is ``(bucket index, value)`` pairs, oldest first, with indexes in
    ``[0, buckets)``: x is placed by bucket index, so a bucket with no data shows as a
    straight segment over the gap, not as a squeezed time axis. y runs from the lowest
    value (bottom) to the highest (top), ``pad`` units inside the box; a flat series is
    drawn across the middle. Empty series: ``""``.
    """
    if not series:
        return ""
    values = [value for _, value in series]
    low, high = min(values), max(values)
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    span = buckets - 1 if buckets > 1 else 1
    points = []
    for index, value in series:
        x = pad + inner_w * index / span
        if high == low:
            y = pad + inner_h / 2
        else:
            y = pad + inner_h * float((high - value) / (high - low))
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)
