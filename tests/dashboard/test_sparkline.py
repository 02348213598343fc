"""The sparkline's SVG points: pure arithmetic, checked against hand-placed points."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dashboard.sparkline import sparkline_points

D = Decimal


@pytest.mark.parametrize(("series", "buckets", "expected"), [
    # 100 × 20 box, pad 0: x = 100 × i / (buckets − 1); y = 20 × (high − v) / (high − low)
    ([(0, D(10)), (1, D(20)), (2, D(15))], 3, "0.0,20.0 50.0,0.0 100.0,10.0"),
    # a gap: bucket 1 has no data, so bucket 3 sits at x = 100, not at x = 50
    ([(0, D(1)), (3, D(2))], 4, "0.0,20.0 100.0,0.0"),
    # flat: across the middle
    ([(0, D(5)), (1, D(5))], 2, "0.0,10.0 100.0,10.0"),
    # one point in a one-bucket window: at the left edge, mid-height
    ([(0, D(7))], 1, "0.0,10.0"),
    ([], 10, ""),
])
def test_points(series, buckets, expected):
    assert sparkline_points(series, buckets=buckets, width=100, height=20, pad=0) == expected


def test_padding_keeps_the_line_inside_the_box():
    # pad 2 in a 240 × 40 box: x from 2 to 238, y from 2 (high) to 38 (low)
    points = sparkline_points([(0, D("9.99")), (95, D("10.01"))], buckets=96, width=240,
                              height=40)
    assert points == "2.0,38.0 238.0,2.0"
