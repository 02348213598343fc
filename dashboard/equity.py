"""Total equity per currency over the last 24 hours, downsampled by the database, for the
dashboard's sparklines.

Time is cut into buckets aligned on the clock (15 minutes once there are 24 hours of
snapshots; 1, 2, 5 or 10 minutes while the history is younger, so a new platform has a
line too). For a bucket the database gives each linked account the average of its
snapshots there (one syncing every second weighs what one syncing every 10 s weighs), then
the sum per currency: at most 96 rows per currency reach Python, whatever the number of
snapshots. An account with no snapshot in a bucket (stale for all of it) is not in that
bucket's sum.

The line ends at the last *finished* bucket (the live total is in the table beside it). A
finished bucket never changes, so it is computed once, over that bucket's snapshots (the
``taken_at`` index), and cached (Django's cache) for a day. The beat task
``dashboard.tasks.equity_sparklines_warm`` computes each bucket that finished, within a
minute, and refills a cold cache, 24 buckets a minute; a render computes one itself only
when the two newest are missing (a cold cache, or no beat), so no request pays for more
than one bucket (bench/dashboard_bench.py prints the costs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Avg, F, FloatField, Func, Min, Value
from django.db.models.functions import Floor
from django.utils import timezone

from dashboard.sparkline import sparkline_points
from positions.models import EquitySnapshot

SPARKLINE_WINDOW = timedelta(hours=24)
SPARKLINE_BUCKETS = 96
# Bucket widths, seconds: the narrowest that fits the history into 96 buckets. Each holds
# several sync cadences (10 s by default), so every syncing account is in each bucket.
BUCKET_LADDER = (60, 120, 300, 600, 900)
SPARKLINE_WIDTH, SPARKLINE_HEIGHT = 240, 40
FINISHED_BUCKET_TTL = 25 * 3600
# A render computes at most this many missing buckets (the one that just finished; a cold
# cache lacks 96, seconds of work at 2,000 accounts): the beat task fills in the rest.
RENDER_MAX_BUCKETS = 1
WARM_MAX_BUCKETS = 24
CACHE_PREFIX = "dashboard:equity:v2"
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Sparkline:
    """Total equity of one currency over the window, one point per bucket with data."""

    points: str  # SVG polyline points in a SPARKLINE_WIDTH × SPARKLINE_HEIGHT box
    first: Decimal
    last: Decimal
    low: Decimal
    high: Decimal
    samples: int

    @property
    def last_x(self) -> str:
        return self.points.rsplit(" ", 1)[-1].split(",")[0]

    @property
    def last_y(self) -> str:
        return self.points.rsplit(" ", 1)[-1].split(",")[1]


class EpochSeconds(Func):
    """Seconds since 1970-01-01 UTC of a datetime column, as a float, in SQL."""

    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)",
                           **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # SQLite keeps UTC datetimes as text; julianday() reads them (2440587.5: 1970-01-01)
        return self.as_sql(compiler, connection,
                           template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
                           **extra)


def _cents(value: Any) -> Decimal:
    """A database sum (Decimal on PostgreSQL, float on SQLite) as cents."""
    return Decimal(str(value)).quantize(CENT)


def equity_buckets(*, start: int, stop: int,
                   bucket_seconds: int) -> list[tuple[str, int, Decimal, int]]:
    """Total equity per currency for the clock-aligned buckets ``start`` ≤ k < ``stop``
    (bucket k covers Unix seconds ``[k × width, (k + 1) × width)``): ``(currency, k,
    total equity, accounts)`` rows, ordered, each total in its currency's money.

    Within a bucket an account counts once, with the average of its snapshots there.
    Linked (active) accounts only.
    """
    since = datetime.fromtimestamp(start * bucket_seconds, tz=UTC)
    until = datetime.fromtimestamp(stop * bucket_seconds, tz=UTC)
    bucket = Floor(EpochSeconds(F("taken_at")) / Value(float(bucket_seconds)))
    per_account = (EquitySnapshot.objects
                   .filter(taken_at__gte=since, taken_at__lt=until, account__is_active=True)
                   .annotate(currency=F("account__currency"), bucket=bucket)
                   .values("currency", "account_id", "bucket")
                   .annotate(equity_avg=Avg("equity"))
                   .order_by())
    inner, params = per_account.query.sql_with_params()
    # ``inner`` is the ORM's own SQL, its parameters kept apart: nothing is interpolated
    sql = ("SELECT per_account.currency, per_account.bucket, "  # noqa: S608
           "SUM(per_account.equity_avg), COUNT(*) FROM (" + inner + ") per_account "
           "GROUP BY per_account.currency, per_account.bucket "
           "ORDER BY per_account.currency, per_account.bucket")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(currency, int(index), _cents(total), n)
                for currency, index, total, n in cursor.fetchall()]


def bucket_width(history: timedelta) -> int:
    """The narrowest ladder width that fits ``history`` into 96 buckets (seconds)."""
    seconds = history.total_seconds()
    return next((w for w in BUCKET_LADDER if seconds <= w * SPARKLINE_BUCKETS),
                BUCKET_LADDER[-1])


def _window(now: datetime) -> tuple[int, int, int]:
    """``(width, first, stop)``: the finished buckets ``first`` ≤ k < ``stop`` to draw.
    The bucket holding the first snapshot is left out (it may have begun before it), and
    so is the bucket running now."""
    first = EquitySnapshot.objects.filter(taken_at__gte=now - SPARKLINE_WINDOW,
                                          taken_at__lte=now).aggregate(m=Min("taken_at"))["m"]
    if first is None:
        return BUCKET_LADDER[0], 0, 0
    width = bucket_width(now - first)
    stop = int(now.timestamp()) // width
    start = max(stop - SPARKLINE_BUCKETS, int(first.timestamp()) // width + 1)
    return width, start, stop


def _totals(width: int, start: int, stop: int, *, limit: int,
            render: bool = False) -> tuple[dict[int, list[tuple[str, Decimal]]], int]:
    """Each finished bucket's totals, from the cache, or from the database (once): at most
    ``limit`` missing buckets are computed, newest first. For a ``render``, only when the
    two newest are both missing (the cache is cold, or the beat task is not running): a
    bucket that has just finished is the beat task's, within a minute. Returns the totals
    known and how many buckets were computed."""
    keys = {k: f"{CACHE_PREFIX}:{width}:{k}" for k in range(start, stop)}
    cached = cache.get_many(keys.values())
    totals = {k: cached[key] for k, key in keys.items() if key in cached}
    missing = [k for k in keys if k not in totals]
    if render:
        behind = stop - 1 not in totals and (stop - 2 < start or stop - 2 not in totals)
        limit = limit if behind else 0
    missing = missing[-limit:] if limit > 0 else []
    if missing:
        computed: dict[int, list[tuple[str, Decimal]]] = {k: [] for k in missing}
        for currency, k, total, _ in equity_buckets(start=missing[0], stop=missing[-1] + 1,
                                                    bucket_seconds=width):
            computed.setdefault(k, []).append((currency, total))
        cache.set_many({keys[k]: computed[k] for k in missing}, FINISHED_BUCKET_TTL)
        totals.update({k: computed[k] for k in missing})
    return totals, len(missing)


def sparklines(*, now: datetime) -> tuple[dict[str, Sparkline], datetime | None, int]:
    """``({currency: Sparkline}, start of the line, bucket seconds)``: 1 query. A bucket
    that has just finished is left to the beat task (``sparklines_warm``, every minute);
    only when the two newest are both missing (a cold cache, or no beat) does the render
    compute the newest one itself (1 more query), so no render pays for more."""
    width, start, stop = _window(now)
    if stop <= start:
        return {}, None, width
    series: dict[str, list[tuple[int, Decimal]]] = {}
    totals, _ = _totals(width, start, stop, limit=RENDER_MAX_BUCKETS, render=True)
    for k, rows in sorted(totals.items()):
        for currency, total in rows:
            series.setdefault(currency, []).append((k - start, total))
    lines = {}
    for currency, points in series.items():
        values = [v for _, v in points]
        lines[currency] = Sparkline(
            points=sparkline_points(points, buckets=stop - start, width=SPARKLINE_WIDTH,
                                    height=SPARKLINE_HEIGHT),
            first=values[0], last=values[-1], low=min(values), high=max(values),
            samples=len(values))
    return lines, datetime.fromtimestamp(start * width, tz=UTC), width


def sparklines_warm(*, now: datetime | None = None) -> int:
    """Compute up to ``WARM_MAX_BUCKETS`` finished buckets the cache lacks, newest first
    (beat runs it every minute: a cold cache is full again within minutes, off the request
    path). Returns how many were computed."""
    width, start, stop = _window(now or timezone.now())
    if stop <= start:
        return 0
    return _totals(width, start, stop, limit=WARM_MAX_BUCKETS)[1]
