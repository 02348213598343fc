"""Trade server time: MetaTrader 5 reports times as the server's wall clock.

A MetaTrader 5 terminal reports every position, deal, tick and bar time as epoch seconds
*of the trade server's wall-clock time*, not of UTC: on a GMT+2 server a deal made at
10:00 UTC carries the epoch of 12:00. The date arguments of history_deals_get are read the
same way. These pure functions convert at that boundary; zones are IANA names
(``zoneinfo``; "Etc/GMT-2" is UTC+2, POSIX's inverted sign).

DST edges: a wall time that occurs twice (the hour after clocks go back) is read as its
first occurrence; one that never occurs (the hour skipped in spring) is read with the
offset in force before the change (``zoneinfo``'s fold=0 rule).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# Offsets on Earth's clocks run from UTC-12 to UTC+14.
MIN_OFFSET_MINUTES = -12 * 60
MAX_OFFSET_MINUTES = 14 * 60
OFFSET_STEP_MINUTES = 30

# Half-hour offsets and a zone that keeps them (America/St_Johns: -3:30 in winter only;
# the others have no daylight saving time).
HALF_HOUR_ZONES = {
    210: "Asia/Tehran",
    270: "Asia/Kabul",
    330: "Asia/Kolkata",
    390: "Asia/Yangon",
    570: "Australia/Darwin",
    -210: "America/St_Johns",
}


def to_utc(epoch_seconds: int, zone: str) -> datetime:
    """The aware UTC moment of a server epoch: ``epoch_seconds`` read as a naive wall-clock
    time in ``zone``. E.g. 1492596000 (2017-04-19 10:00 as a wall clock) in "Etc/GMT-2" is
    2017-04-19 08:00 UTC. Raises ``zoneinfo.ZoneInfoNotFoundError`` for an unknown zone."""
    wall = datetime.fromtimestamp(epoch_seconds, tz=UTC).replace(tzinfo=ZoneInfo(zone))
    return wall.astimezone(UTC)


def to_server_epoch(moment: datetime, zone: str) -> int:
    """The server epoch of an aware ``moment``: its wall-clock time in ``zone``, as epoch
    seconds (rounded down to the second). Inverse of ``to_utc``. Raises ValueError for a
    naive datetime."""
    if moment.tzinfo is None:
        raise ValueError("to_server_epoch needs an aware datetime")
    wall = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=UTC)
    return math.floor(wall.timestamp())


def detect_utc_offset_minutes(server_epoch: int, now: datetime) -> int | None:
    """The server's offset from UTC in minutes: a fresh server time (e.g. the last tick's)
    minus the real UTC ``now``, rounded to the nearest 30 minutes. ``None`` when that falls
    outside [-12 h, +14 h]: the time is not fresh (a weekend's last tick, a replay of the
    past). A tick a few minutes old still rounds right; one hours old would not, so call
    this while the market trades."""
    minutes = (server_epoch - now.timestamp()) / 60
    rounded = round(minutes / OFFSET_STEP_MINUTES) * OFFSET_STEP_MINUTES
    if not MIN_OFFSET_MINUTES <= rounded <= MAX_OFFSET_MINUTES:
        return None
    return int(rounded)


def zone_for_offset(minutes: int) -> str | None:
    """An IANA zone with a fixed offset of ``minutes`` from UTC: "UTC" for 0, "Etc/GMT-2"
    for +120 (POSIX's inverted sign), a named zone for the usual half-hour offsets
    (``HALF_HOUR_ZONES``: +330 is "Asia/Kolkata"), else ``None``."""
    if minutes == 0:
        return "UTC"
    if minutes % 60 == 0 and MIN_OFFSET_MINUTES <= minutes <= MAX_OFFSET_MINUTES:
        return f"Etc/GMT{-minutes // 60:+d}"
    return HALF_HOUR_ZONES.get(minutes)
