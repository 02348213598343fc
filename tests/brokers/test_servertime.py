"""brokers.servertime: trade server wall-clock epochs to UTC and back, offset detection.

Figures by hand: 1492596000 is 2017-04-19 10:00:00 as a wall clock (1492592400, bar #0 of
brokers/sim/EURUSD_H1.csv, is 09:00). Offsets on 2017-04-19 from the IANA tz database:
Etc/GMT-2 +2:00, Asia/Kolkata +5:30, America/St_Johns -2:30 (NDT, daylight time since
12 March), Europe/Athens +3:00 (EEST, since 26 March).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from brokers.servertime import (
    detect_utc_offset_minutes,
    to_server_epoch,
    to_utc,
    zone_for_offset,
)

TEN_WALL = 1492596000  # 2017-04-19 10:00:00 as a wall clock


@pytest.mark.parametrize(("zone", "utc"), [
    ("UTC", datetime(2017, 4, 19, 10, tzinfo=UTC)),
    ("Etc/GMT-2", datetime(2017, 4, 19, 8, tzinfo=UTC)),  # UTC+2: 10:00 - 2 h
    ("Etc/GMT+5", datetime(2017, 4, 19, 15, tzinfo=UTC)),  # UTC-5: 10:00 + 5 h
    ("Asia/Kolkata", datetime(2017, 4, 19, 4, 30, tzinfo=UTC)),  # 10:00 - 5:30
    ("America/St_Johns", datetime(2017, 4, 19, 12, 30, tzinfo=UTC)),  # 10:00 + 2:30 (NDT)
    ("Europe/Athens", datetime(2017, 4, 19, 7, tzinfo=UTC)),  # 10:00 - 3 h (EEST)
])
def test_to_utc_and_back(zone, utc):
    assert to_utc(TEN_WALL, zone) == utc
    assert to_utc(TEN_WALL, zone).tzinfo is UTC
    assert to_server_epoch(utc, zone) == TEN_WALL


def test_to_server_epoch_takes_any_aware_time_and_refuses_naive():
    athens = datetime(2017, 4, 19, 10, tzinfo=ZoneInfo("Europe/Athens"))  # 07:00 UTC
    assert to_server_epoch(athens, "Etc/GMT-2") == TEN_WALL - 3600  # 09:00 wall at UTC+2
    assert to_server_epoch(datetime(2017, 4, 19, 8, 0, 0, 999_999, tzinfo=UTC),
                           "Etc/GMT-2") == TEN_WALL  # whole seconds, rounded down
    with pytest.raises(ValueError, match="aware"):
        to_server_epoch(datetime(2017, 4, 19, 8), "Etc/GMT-2")


def test_a_repeated_wall_time_reads_as_its_first_occurrence():
    # Europe/Athens went back from 04:00 EEST to 03:00 EET on 2017-10-29: 03:30 happened
    # twice, at 00:30 UTC (EEST, +3) and 01:30 UTC (EET, +2). fold=0 takes the first.
    wall = int(datetime(2017, 10, 29, 3, 30, tzinfo=UTC).timestamp())
    assert to_utc(wall, "Europe/Athens") == datetime(2017, 10, 29, 0, 30, tzinfo=UTC)


NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("server", "expected"), [
    (NOW + timedelta(hours=2, seconds=40), 120),  # a GMT+2 tick 40 s after now
    (NOW + timedelta(hours=2, minutes=-14), 120),  # 14 minutes old still rounds to +2 h
    (NOW + timedelta(hours=5, minutes=20), 330),  # India: 320 min -> nearest 30 is 330
    (NOW - timedelta(hours=3, minutes=30), -210),  # Newfoundland standard time
    (NOW, 0),
    (NOW + timedelta(hours=14), 840),  # Kiribati, the far edge
    (NOW - timedelta(hours=12), -720),
    (NOW - timedelta(hours=48), None),  # Friday's last tick read on Sunday
    (NOW + timedelta(hours=15), None),
    (datetime(2017, 4, 19, 9, tzinfo=UTC), None),  # a replay of 2017
])
def test_detect_utc_offset_minutes(server, expected):
    server_epoch = int(server.replace(tzinfo=UTC).timestamp())
    assert detect_utc_offset_minutes(server_epoch, NOW) == expected


@pytest.mark.parametrize(("minutes", "zone"), [
    (0, "UTC"),
    (120, "Etc/GMT-2"),  # POSIX's inverted sign
    (180, "Etc/GMT-3"),
    (-300, "Etc/GMT+5"),
    (840, "Etc/GMT-14"),
    (-720, "Etc/GMT+12"),
    (330, "Asia/Kolkata"),
    (270, "Asia/Kabul"),
    (210, "Asia/Tehran"),
    (-210, "America/St_Johns"),
    (570, "Australia/Darwin"),
    (345, None),  # Nepal's +5:45 is no 30-minute step
    (900, None),
    (-780, None),
])
def test_zone_for_offset(minutes, zone):
    assert zone_for_offset(minutes) == zone


@pytest.mark.parametrize("minutes", [*range(-720, 841, 60), 330, 270, 210, 570])
def test_zone_for_offset_has_that_offset(minutes):
    # on 2024-01-15 (winter in the north: St John's is on -3:30 only then, skipped here)
    zone = zone_for_offset(minutes)
    assert zone is not None
    moment = datetime(2024, 1, 15, 12, tzinfo=UTC).astimezone(ZoneInfo(zone))
    assert moment.utcoffset() == timedelta(minutes=minutes)


ZONES = ["UTC", "Etc/GMT-2", "Etc/GMT+5", "Asia/Kolkata", "Europe/Athens",
         "America/New_York", "America/St_Johns", "Australia/Lord_Howe"]


@given(st.integers(min_value=0, max_value=2**31 - 100_000), st.sampled_from(ZONES))
def test_to_utc_inverts_to_server_epoch(seconds, zone):
    """to_utc(to_server_epoch(t)) == t for whole-second t, except where t's wall time
    repeats (the hour after a DST change back), which reads as its first occurrence."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    wall = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    tz = ZoneInfo(zone)
    assume(wall.replace(tzinfo=tz, fold=0).utcoffset() == wall.replace(tzinfo=tz,
                                                                         fold=1).utcoffset())
    assert to_utc(to_server_epoch(moment, zone), zone) == moment
