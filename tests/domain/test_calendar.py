"""Business hours: validation, open/closed, elapsed business time, DST, properties."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.domain.calendar import BusinessHours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
US = timedelta(microseconds=1)

WEEKDAYS = BusinessHours()
BERLIN_HOURS = BusinessHours(timezone="Europe/Berlin")
NY_HOURS = BusinessHours(timezone="America/New_York")
ALWAYS = (0, 1, 2, 3, 4, 5, 6)


def _at(
    zone: tzinfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0
) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=zone)


def utc(*args: int) -> datetime:
    return _at(UTC, *args)


def berlin(*args: int) -> datetime:
    return _at(BERLIN, *args)


def new_york(*args: int) -> datetime:
    return _at(NEW_YORK, *args)


# -- validation --------------------------------------------------------------------------------


def test_defaults() -> None:
    assert WEEKDAYS.timezone == "UTC"
    assert WEEKDAYS.days == (0, 1, 2, 3, 4)
    assert (WEEKDAYS.start, WEEKDAYS.end) == (time(9), time(17))


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "CEST", "../etc/passwd", ""])
def test_unknown_timezone_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        BusinessHours(timezone=name)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([4, 0, 0, 2], (0, 2, 4)),
        (["mon", "Tue", "WEDNESDAY", "thu", "fri"], (0, 1, 2, 3, 4)),
        ("sat, sun", (5, 6)),
        (["6"], (6,)),
    ],
)
def test_days_accept_numbers_and_names(days: object, expected: tuple[int, ...]) -> None:
    assert BusinessHours.model_validate({"days": days}).days == expected


@pytest.mark.parametrize(
    ("days", "message"),
    [([7], "0-6"), ([-1], "0-6"), ([], "at least one"), (["someday"], "unknown weekday")],
)
def test_bad_days_are_rejected(days: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessHours.model_validate({"days": days})


@pytest.mark.parametrize(("start", "end"), [("17:00", "09:00"), ("09:00", "09:00")])
def test_end_must_follow_start(start: str, end: str) -> None:
    with pytest.raises(ValidationError, match="must be after start"):
        BusinessHours.model_validate({"start": start, "end": end})


def test_end_midnight_means_until_midnight() -> None:
    hours = BusinessHours.model_validate({"start": "18:00", "end": "00:00"})
    assert hours.day_length() == timedelta(hours=6)
    assert hours.is_open(utc(2026, 3, 2, 23, 59, 59))
    assert not hours.is_open(utc(2026, 3, 3, 0, 0))


def test_times_with_offsets_are_rejected() -> None:
    with pytest.raises(ValidationError, match="wall-clock"):
        BusinessHours(start=time(9, tzinfo=UTC))


def test_unknown_fields_are_rejected_and_model_is_frozen() -> None:
    with pytest.raises(ValidationError):
        BusinessHours.model_validate({"timezone": "UTC", "holidays": []})
    with pytest.raises(ValidationError):
        WEEKDAYS.timezone = "Europe/Berlin"  # type: ignore[misc]


def test_zone_property() -> None:
    assert BERLIN_HOURS.zone == BERLIN


@pytest.mark.parametrize(
    ("start", "end", "length"),
    [
        (time(9), time(17), timedelta(hours=8)),
        (time(8, 30), time(0), timedelta(hours=15, minutes=30)),
        (time(0), time(0), timedelta(hours=24)),
        (time(0), time(23, 59), timedelta(hours=23, minutes=59)),
    ],
)
def test_day_length(start: time, end: time, length: timedelta) -> None:
    assert BusinessHours(start=start, end=end).day_length() == length


# -- is_open -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "at", "expected"),
    [
        (WEEKDAYS, utc(2026, 3, 2, 9, 0), True),  # Monday opening instant
        (WEEKDAYS, utc(2026, 3, 2, 8, 59, 59, 999999), False),
        (WEEKDAYS, utc(2026, 3, 2, 16, 59, 59, 999999), True),
        (WEEKDAYS, utc(2026, 3, 2, 17, 0), False),  # closing instant is closed
        (WEEKDAYS, utc(2026, 3, 6, 12, 0), True),  # Friday
        (WEEKDAYS, utc(2026, 3, 7, 12, 0), False),  # Saturday
        (WEEKDAYS, utc(2026, 3, 8, 12, 0), False),  # Sunday
        (WEEKDAYS, berlin(2026, 3, 2, 10, 0), True),  # 09:00Z: any zone works for `at`
        (WEEKDAYS, berlin(2026, 3, 2, 9, 59), False),
        # Berlin, winter: 09:00 local is 08:00Z
        (BERLIN_HOURS, utc(2026, 3, 27, 8, 0), True),
        (BERLIN_HOURS, utc(2026, 3, 27, 7, 59), False),
        (BERLIN_HOURS, utc(2026, 3, 27, 15, 59), True),
        (BERLIN_HOURS, utc(2026, 3, 27, 16, 0), False),
        # Berlin, summer after 2026-03-29: 09:00 local is 07:00Z
        (BERLIN_HOURS, utc(2026, 3, 30, 7, 0), True),
        (BERLIN_HOURS, utc(2026, 3, 30, 6, 59), False),
        (BERLIN_HOURS, utc(2026, 3, 30, 14, 59), True),
        (BERLIN_HOURS, utc(2026, 3, 30, 15, 0), False),
        # Berlin, back to winter after 2026-10-25
        (BERLIN_HOURS, utc(2026, 10, 23, 7, 0), True),
        (BERLIN_HOURS, utc(2026, 10, 26, 7, 0), False),
        (BERLIN_HOURS, utc(2026, 10, 26, 8, 0), True),
        # New York: EST until 2026-03-08, then EDT
        (NY_HOURS, utc(2026, 3, 6, 14, 0), True),
        (NY_HOURS, utc(2026, 3, 6, 13, 59), False),
        (NY_HOURS, utc(2026, 3, 9, 13, 0), True),
        (NY_HOURS, utc(2026, 3, 9, 12, 59), False),
        (NY_HOURS, new_york(2026, 3, 9, 9, 0), True),
        (NY_HOURS, new_york(2026, 3, 8, 12, 0), False),  # Sunday
    ],
)
def test_is_open(hours: BusinessHours, at: datetime, expected: bool) -> None:
    assert hours.is_open(at) is expected


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 3, 2, 12)
    with pytest.raises(ValueError, match="timezone-aware"):
        WEEKDAYS.is_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        WEEKDAYS.business_time_between(naive, utc(2026, 3, 3))
    with pytest.raises(ValueError, match="timezone-aware"):
        WEEKDAYS.business_time_between(utc(2026, 3, 3), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        WEEKDAYS.add_business_time(naive, H)


# -- business_time_between ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "start", "end", "expected"),
    [
        (WEEKDAYS, utc(2026, 3, 2, 10), utc(2026, 3, 2, 12), 2 * H),
        (WEEKDAYS, utc(2026, 3, 2, 7), utc(2026, 3, 2, 19), 8 * H),
        (WEEKDAYS, utc(2026, 3, 2, 12), utc(2026, 3, 2, 12), timedelta(0)),
        (WEEKDAYS, utc(2026, 3, 2, 12), utc(2026, 3, 2, 10), timedelta(0)),  # reversed
        (WEEKDAYS, utc(2026, 3, 2, 17), utc(2026, 3, 3, 9), timedelta(0)),  # overnight
        (WEEKDAYS, utc(2026, 3, 7, 0), utc(2026, 3, 9, 0), timedelta(0)),  # weekend
        # Friday 15:00 -> Monday 11:00: 2h + 2h across the weekend
        (WEEKDAYS, utc(2026, 3, 6, 15), utc(2026, 3, 9, 11), 4 * H),
        (WEEKDAYS, utc(2026, 3, 2, 0), utc(2026, 3, 9, 0), 40 * H),  # one week
        (WEEKDAYS, utc(2026, 3, 1, 0), utc(2026, 4, 1, 0), 22 * 8 * H),  # March 2026
        # Berlin spring change (Sunday 2026-03-29): still 2h + 2h, wall time is 67h
        (BERLIN_HOURS, berlin(2026, 3, 27, 15), berlin(2026, 3, 30, 11), 4 * H),
        (BERLIN_HOURS, berlin(2026, 3, 27, 9), berlin(2026, 3, 30, 17), 16 * H),
        (BERLIN_HOURS, utc(2026, 3, 23, 0), utc(2026, 4, 6, 0), 80 * H),
        # Berlin autumn change (Sunday 2026-10-25)
        (BERLIN_HOURS, berlin(2026, 10, 23, 15), berlin(2026, 10, 26, 11), 4 * H),
        (BERLIN_HOURS, berlin(2026, 10, 23, 9), berlin(2026, 10, 26, 17), 16 * H),
        # New York changes (2026-03-08 and 2026-11-01)
        (NY_HOURS, new_york(2026, 3, 6, 15), new_york(2026, 3, 9, 11), 4 * H),
        (NY_HOURS, new_york(2026, 10, 30, 15), new_york(2026, 11, 2, 11), 4 * H),
        # Instants in another zone than the calendar's
        (BERLIN_HOURS, utc(2026, 3, 30, 6), utc(2026, 3, 30, 8), 1 * H),
        (NY_HOURS, berlin(2026, 3, 9, 13), berlin(2026, 3, 9, 16), 2 * H),
    ],
)
def test_business_time_between(
    hours: BusinessHours, start: datetime, end: datetime, expected: timedelta
) -> None:
    assert hours.business_time_between(start, end) == expected


@pytest.mark.parametrize(
    ("zone", "day", "length"),
    [
        ("Europe/Berlin", (2026, 3, 29), 23 * H),
        ("Europe/Berlin", (2026, 10, 25), 25 * H),
        ("Europe/Berlin", (2026, 6, 1), 24 * H),
        ("America/New_York", (2026, 3, 8), 23 * H),
        ("America/New_York", (2026, 11, 1), 25 * H),
        ("UTC", (2026, 3, 29), 24 * H),
    ],
)
def test_round_the_clock_hours_follow_dst_day_lengths(
    zone: str, day: tuple[int, int, int], length: timedelta
) -> None:
    hours = BusinessHours(timezone=zone, days=ALWAYS, start=time(0), end=time(0))
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz)
    end = datetime.combine(start.date() + timedelta(days=1), time(0), tzinfo=tz)
    assert hours.business_time_between(start, end) == length
    assert hours.day_length() == 24 * H


@pytest.mark.parametrize(
    ("day", "length"),
    [((2026, 3, 29), 3 * H), ((2026, 10, 25), 5 * H), ((2026, 3, 28), 4 * H)],
)
def test_window_spanning_a_dst_change(day: tuple[int, int, int], length: timedelta) -> None:
    hours = BusinessHours(timezone="Europe/Berlin", days=ALWAYS, start=time(1), end=time(5))
    assert hours.business_time_between(berlin(*day), berlin(*day, 12)) == length
    assert hours.is_open(berlin(*day, 4, 30))
    assert not hours.is_open(berlin(*day, 5))


# -- add_business_time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "start", "amount", "expected"),
    [
        (WEEKDAYS, utc(2026, 3, 2, 10), 2 * H, utc(2026, 3, 2, 12)),
        (WEEKDAYS, utc(2026, 3, 2, 9), 8 * H, utc(2026, 3, 2, 17)),  # fills the day exactly
        (WEEKDAYS, utc(2026, 3, 2, 9), 8 * H + US, utc(2026, 3, 3, 9) + US),
        (WEEKDAYS, utc(2026, 3, 2, 6), H, utc(2026, 3, 2, 10)),  # before opening
        (WEEKDAYS, utc(2026, 3, 2, 18), H, utc(2026, 3, 3, 10)),  # after closing
        (WEEKDAYS, utc(2026, 3, 6, 15), 4 * H, utc(2026, 3, 9, 11)),  # over the weekend
        (WEEKDAYS, utc(2026, 3, 7, 12), 4 * H, utc(2026, 3, 9, 13)),  # from Saturday
        (WEEKDAYS, utc(2026, 3, 2, 9), 40 * H, utc(2026, 3, 6, 17)),
        (WEEKDAYS, utc(2026, 3, 7, 12), timedelta(0), utc(2026, 3, 7, 12)),
        # Berlin over the spring change: Monday 11:00 CEST is 09:00Z
        (BERLIN_HOURS, berlin(2026, 3, 27, 15), 4 * H, utc(2026, 3, 30, 9)),
        (BERLIN_HOURS, berlin(2026, 3, 27, 13), 8 * H, berlin(2026, 3, 30, 13)),
        # Berlin over the autumn change: Monday 11:00 CET is 10:00Z
        (BERLIN_HOURS, berlin(2026, 10, 23, 15), 4 * H, utc(2026, 10, 26, 10)),
        (NY_HOURS, new_york(2026, 3, 6, 15), 4 * H, utc(2026, 3, 9, 15)),
        (NY_HOURS, new_york(2026, 10, 30, 15), 4 * H, utc(2026, 11, 2, 16)),
    ],
)
def test_add_business_time(
    hours: BusinessHours, start: datetime, amount: timedelta, expected: datetime
) -> None:
    result = hours.add_business_time(start, amount)
    assert result == expected
    assert result.tzinfo is start.tzinfo
    assert hours.business_time_between(start, result) == amount


def test_add_business_time_across_a_short_day() -> None:
    hours = BusinessHours(timezone="Europe/Berlin", days=ALWAYS, start=time(0), end=time(0))
    assert hours.add_business_time(berlin(2026, 3, 29), 24 * H) == berlin(2026, 3, 30, 1)
    assert hours.add_business_time(berlin(2026, 10, 25), 24 * H) == berlin(2026, 10, 25, 23)


def test_negative_amount_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        WEEKDAYS.add_business_time(utc(2026, 3, 2), -H)


# -- properties --------------------------------------------------------------------------------

PROPERTIES = settings(deadline=None, database=None)

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@st.composite
def business_hours(draw: st.DrawFn) -> BusinessHours:
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    start_minute = draw(st.integers(0, 24 * 60 - 1))
    end_minute = draw(st.one_of(st.just(0), st.integers(start_minute + 1, 24 * 60)))
    end = time(0) if end_minute in (0, 24 * 60) else time(*divmod(end_minute, 60))
    return BusinessHours(
        timezone=draw(st.sampled_from(ZONES)),
        days=tuple(days),
        start=time(*divmod(start_minute, 60)),
        end=end,
    )


instants = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 2, 1), timezones=st.just(UTC)
)
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@PROPERTIES
@given(business_hours(), instants, spans, spans)
def test_business_time_is_additive(
    hours: BusinessHours, a: datetime, ab: timedelta, bc: timedelta
) -> None:
    b, c = a + ab, a + ab + bc
    total = hours.business_time_between(a, c)
    assert total == hours.business_time_between(a, b) + hours.business_time_between(b, c)


@PROPERTIES
@given(business_hours(), instants, spans)
def test_business_time_never_exceeds_wall_time(
    hours: BusinessHours, a: datetime, span: timedelta
) -> None:
    assert timedelta(0) <= hours.business_time_between(a, a + span) <= span


@PROPERTIES
@given(business_hours(), instants, st.data())
def test_add_business_time_is_the_first_instant_reaching_amount(
    hours: BusinessHours, start: datetime, data: st.DataObject
) -> None:
    up_to_three_weeks = 3 * len(hours.days) * hours.day_length()
    amount = data.draw(st.timedeltas(min_value=timedelta(0), max_value=up_to_three_weeks))
    end = hours.add_business_time(start, amount)
    assert end >= start
    assert hours.business_time_between(start, end) == amount
    if amount > timedelta(0):
        assert hours.business_time_between(start, end - US) < amount


@PROPERTIES
@given(business_hours(), instants)
def test_is_open_agrees_with_elapsed_business_time(hours: BusinessHours, at: datetime) -> None:
    assert hours.business_time_between(at, at + US) == (US if hours.is_open(at) else timedelta(0))
