"""On-call resolution with `now` passed in: rotations, DST, layers, overrides, empty schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, Rotation, Schedule, parse_policy
from bot.paging.oncall import (
    ActiveWindow,
    Override,
    now_and_next,
    on_call_at,
    timeline,
    to_instant,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return to_instant(datetime(*args), zone)  # type: ignore[arg-type]


def schedule(zone: str = "Europe/Berlin", **rotation: Any) -> Schedule:
    return Schedule(timezone=zone, layers=[Rotation(**rotation)])


def walls(segments: list[Any], zone: ZoneInfo) -> list[tuple[str | None, str]]:
    return [(s.person, s.start.astimezone(zone).strftime("%m-%d %H:%M %Z")) for s in segments]


# -- local wall-clock times to instants -------------------------------------------------------


def test_to_instant_takes_the_first_of_a_repeated_time_and_the_jump_for_a_missing_one() -> None:
    # Europe/Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist
    assert to_instant(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert to_instant(datetime(2026, 3, 29, 1, 59), BERLIN) == utc(2026, 3, 29, 0, 59)
    assert to_instant(datetime(2026, 3, 29, 3, 0), BERLIN) == utc(2026, 3, 29, 1, 0)
    # ... and falls back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice
    assert to_instant(datetime(2026, 10, 25, 2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    # America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT and 2026-11-01 02:00 EDT -> 01:00 EST
    assert to_instant(datetime(2026, 3, 8, 2, 15), NEW_YORK) == utc(2026, 3, 8, 7, 0)
    assert to_instant(datetime(2026, 11, 1, 1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)


# -- DST: hand-offs stay on local wall-clock time, no shift skipped or doubled -----------------


def test_daily_rotation_across_spring_forward_in_berlin() -> None:
    sched = schedule(users=["ann", "ben", "cat"], period="daily", handoff_time=time(9))
    segments = timeline(sched, utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    days = (date(2026, 3, 27) - date(2024, 1, 1)).days
    order = ["ann", "ben", "cat"]
    first = order[days % 3]
    persons = [order[(days + i) % 3] for i in range(4)]
    assert first == persons[0]
    assert walls(segments, BERLIN) == [
        (persons[0], "03-27 13:00 CET"),  # the window's start
        (persons[1], "03-28 09:00 CET"),
        (persons[2], "03-29 09:00 CEST"),  # the clocks went forward at 02:00 that night
        (persons[3], "03-30 09:00 CEST"),
    ]
    # the shift across the change is an hour shorter, the next a full day
    assert [s.end - s.start for s in segments[1:3]] == [timedelta(hours=23), timedelta(hours=24)]


def test_daily_rotation_across_fall_back_in_berlin() -> None:
    sched = schedule(users=["ann", "ben"], period="daily", handoff_time=time(9), start="2026-10-24")
    segments = timeline(sched, utc(2026, 10, 24, 8), utc(2026, 10, 26, 8, 30))
    assert walls(segments, BERLIN) == [
        ("ann", "10-24 10:00 CEST"),  # the window's start
        ("ben", "10-25 09:00 CET"),
        ("ann", "10-26 09:00 CET"),
    ]
    assert segments[1].end - segments[1].start == timedelta(hours=24)
    assert segments[0].end - utc(2026, 10, 24, 7) == timedelta(hours=25)  # 09:00 CEST to 09:00 CET


def test_weekly_hand_off_at_a_time_that_does_not_exist_on_spring_forward_day() -> None:
    # hand-off Sundays 02:30 Berlin time: on 2026-03-29 that time is skipped by the clocks
    sched = schedule(
        users=["ann", "ben"],
        period="weekly",
        handoff_day=6,
        handoff_time=time(2, 30),
        start="2026-03-22",
    )
    segments = timeline(sched, utc(2026, 3, 22, 12), utc(2026, 4, 6))
    assert walls(segments, BERLIN) == [
        ("ann", "03-22 13:00 CET"),
        ("ben", "03-29 03:00 CEST"),  # when the clocks jump past 02:30
        ("ann", "04-05 02:30 CEST"),
    ]
    # from the jump (03:00) to the next 02:30: half an hour short of a week
    assert segments[1].end - segments[1].start == timedelta(days=7, minutes=-30)


def test_weekly_hand_off_at_a_time_that_happens_twice_on_fall_back_day() -> None:
    sched = schedule(users=["ann", "ben"], period="weekly", handoff_day=6, handoff_time=time(2, 30))
    before = on_call_at(sched, utc(2026, 10, 25, 0, 29))
    first = on_call_at(sched, utc(2026, 10, 25, 0, 30))  # 02:30 CEST, the first 02:30
    second = on_call_at(sched, utc(2026, 10, 25, 1, 30))  # 02:30 CET, the second one
    assert before != first and first == second  # one hand-off, at the first 02:30
    segments = timeline(sched, utc(2026, 10, 20), utc(2026, 11, 3))
    assert [s.start for s in segments[1:]] == [utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)]
    assert segments[1].end - segments[1].start == timedelta(days=7, hours=1)


def test_daily_rotation_across_spring_forward_in_new_york() -> None:
    sched = schedule("America/New_York", users=["ann", "ben"], period="daily", handoff_time=time(8))
    segments = timeline(sched, utc(2026, 3, 7, 10), utc(2026, 3, 9, 14))
    assert walls(segments, NEW_YORK) == [
        ("ben", "03-07 05:00 EST"),
        ("ann", "03-07 08:00 EST"),
        ("ben", "03-08 08:00 EDT"),
        ("ann", "03-09 08:00 EDT"),
    ]
    assert segments[1].end - segments[1].start == timedelta(hours=23)


def test_rotation_in_new_york_across_fall_back_at_the_repeated_hour() -> None:
    # hand-off at 01:30, which happens twice on 2026-11-01: the first (EDT) counts
    sched = schedule(
        "America/New_York", users=["ann", "ben"], period="daily", handoff_time=time(1, 30)
    )
    segments = timeline(sched, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12))
    assert [s.start for s in segments[1:]] == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert segments[1].end - segments[1].start == timedelta(hours=25)


def test_twelve_hour_custom_rotation_keeps_its_local_hand_offs_over_dst_in_new_york() -> None:
    sched = schedule(
        "America/New_York",
        users=["day", "night"],
        period="custom",
        custom_period=timedelta(hours=12),
        handoff_time=time(9),
        start="2026-03-01T09:00",
    )
    for day in (7, 8, 9):
        assert on_call_at(sched, local(NEW_YORK, 2026, 3, day, 9, 0)) == "day"
        assert on_call_at(sched, local(NEW_YORK, 2026, 3, day, 8, 59)) == "night"
        assert on_call_at(sched, local(NEW_YORK, 2026, 3, day, 21, 0)) == "night"
        assert on_call_at(sched, local(NEW_YORK, 2026, 3, day, 20, 59)) == "day"
    for day in (1, 2):
        assert on_call_at(sched, local(NEW_YORK, 2026, 11, day, 9, 0)) == "day"
        assert on_call_at(sched, local(NEW_YORK, 2026, 11, day, 21, 0)) == "night"


ZONES = ["Europe/Berlin", "America/New_York"]
# windows around each DST change of 2026 in both zones
DST_DAYS = [date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8), date(2026, 11, 1)]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    around=st.sampled_from(DST_DAYS),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    period=st.sampled_from(["daily", "weekly", "2d", "3d", "8h", "12h"]),
    handoff_day=st.integers(0, 6),
    users=st.integers(2, 4),
    offset_days=st.integers(-20, 5),
)
def test_every_hand_off_is_at_its_wall_clock_time_and_nobody_is_skipped(
    zone: str,
    around: date,
    hour: int,
    minute: int,
    period: str,
    handoff_day: int,
    users: int,
    offset_days: int,
) -> None:
    tz = ZoneInfo(zone)
    names = [f"u{i}" for i in range(users)]
    custom = None if period in ("daily", "weekly") else period
    start = around + timedelta(days=offset_days)
    sched = schedule(
        zone,
        users=names,
        period="custom" if custom else period,
        custom_period=custom,
        handoff_time=time(hour, minute),
        handoff_day=handoff_day,
        start=start.isoformat(),
    )
    lo = to_instant(datetime.combine(around - timedelta(days=3), time(0)), tz)
    hi = to_instant(datetime.combine(around + timedelta(days=10), time(0)), tz)
    segments = timeline(sched, lo, hi)
    nominal = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}.get(period)
    step = nominal or timedelta(hours=int(period[:-1]) * (24 if period.endswith("d") else 1))
    # the wall-clock times hand-offs happen at: the hand-off time, and every step from it
    first = datetime.combine(date(2026, 1, 1), time(hour, minute))
    turns = max(1, timedelta(days=1) // step)
    clock_times = {(first + k * step).time() for k in range(turns)}
    for prev, seg in pairwise(segments):
        if prev.person is None:
            continue  # the rotation started here
        assert seg.person is not None
        # the next person in the rotation, never skipping one
        assert names.index(seg.person) == (names.index(prev.person) + 1) % users
        # on its local wall-clock time (a time the clocks skip maps to the jump itself)
        day = seg.start.astimezone(tz).date()
        assert any(to_instant(datetime.combine(day, t), tz) == seg.start for t in clock_times)
    for prev, seg in pairwise(segments[:-1]):
        if prev.person is not None:  # not the first turn, which may be short
            # a shift is its nominal length, give or take the hour a DST change adds or removes
            assert abs((seg.end - seg.start) - step) <= timedelta(hours=1)


# -- layers, restrictions, start --------------------------------------------------------------


def test_a_later_layer_covers_the_earlier_one_only_in_its_hours() -> None:
    sched = Schedule(
        timezone="Europe/Berlin",
        layers=[
            Rotation(users=["ann", "ben"], period="weekly", start="2026-01-05"),
            Rotation(
                users=["night"],
                period="daily",
                restrict=ActiveWindow(days=("fri", "sat", "sun"), start=time(18), end=time(9)),
            ),
        ],
    )
    assert on_call_at(sched, local(BERLIN, 2026, 1, 9, 17, 59)) == "ann"  # Friday
    assert on_call_at(sched, local(BERLIN, 2026, 1, 9, 18, 0)) == "night"
    assert on_call_at(sched, local(BERLIN, 2026, 1, 10, 8, 59)) == "night"  # Saturday morning
    assert on_call_at(sched, local(BERLIN, 2026, 1, 10, 9, 0)) == "ann"
    assert on_call_at(sched, local(BERLIN, 2026, 1, 12, 8, 59)) == "night"  # Sunday night
    assert on_call_at(sched, local(BERLIN, 2026, 1, 12, 9, 0)) == "ben"  # Monday hand-off
    assert on_call_at(sched, local(BERLIN, 2026, 1, 13, 2, 0)) == "ben"  # Tuesday night
    now = now_and_next(sched, local(BERLIN, 2026, 1, 9, 12, 0))
    assert (now.person, now.next_person) == ("ann", "night")
    assert now.until == local(BERLIN, 2026, 1, 9, 18, 0)


def test_a_layer_has_nobody_before_its_start_and_the_layer_below_shows() -> None:
    sched = Schedule(
        layers=[
            Rotation(users=["base"], period="daily"),
            Rotation(users=["new"], period="weekly", start="2026-06-01"),
        ],
    )
    assert on_call_at(sched, utc(2026, 5, 31, 23)) == "base"
    assert on_call_at(sched, utc(2026, 6, 1, 9)) == "new"
    alone = schedule(users=["new"], period="weekly", start="2026-06-01")
    assert on_call_at(alone, utc(2026, 5, 31)) is None
    upcoming = now_and_next(alone, utc(2026, 5, 30))
    assert upcoming.person is None and upcoming.next_person == "new"
    assert upcoming.until == local(BERLIN, 2026, 6, 1, 9, 0)


def test_a_start_between_hand_off_days_gives_the_first_person_a_short_first_turn() -> None:
    sched = schedule(users=["ann", "ben"], period="weekly", handoff_day=0, start="2026-01-07")
    assert on_call_at(sched, local(BERLIN, 2026, 1, 7, 8, 59)) is None
    assert on_call_at(sched, local(BERLIN, 2026, 1, 7, 9, 0)) == "ann"
    assert on_call_at(sched, local(BERLIN, 2026, 1, 12, 9, 0)) == "ben"
    assert on_call_at(sched, local(BERLIN, 2026, 1, 19, 9, 0)) == "ann"


def test_a_rotation_without_start_counts_from_a_fixed_monday_and_is_stable() -> None:
    sched = schedule(users=["ann", "ben", "cat"], period="daily", handoff_time=time(9))
    at = local(BERLIN, 2026, 7, 1, 12, 0)
    assert on_call_at(sched, at) == on_call_at(sched, at)
    days = (date(2026, 7, 1) - date(2024, 1, 1)).days
    assert on_call_at(sched, at) == ["ann", "ben", "cat"][days % 3]


def test_rotation_and_schedule_time_zones() -> None:
    # the rotation's zone wins over the schedule's, which wins over the team's
    sched = Schedule(
        timezone="Europe/Berlin",
        layers=[Rotation(users=["a", "b"], period="daily", timezone="America/New_York")],
    )
    handoff = local(NEW_YORK, 2026, 7, 1, 9, 0)
    assert on_call_at(sched, handoff) != on_call_at(sched, handoff - timedelta(seconds=1))
    team = Schedule(layers=[Rotation(users=["a", "b"], period="daily")])
    h = local(ZoneInfo("Asia/Tokyo"), 2026, 7, 1, 9, 0)
    assert on_call_at(team, h, default_tz="Asia/Tokyo") != on_call_at(
        team, h - timedelta(seconds=1), default_tz="Asia/Tokyo"
    )


# -- overrides --------------------------------------------------------------------------------


def test_an_override_sits_on_top_and_the_rotation_resumes_after_it() -> None:
    sched = schedule(users=["ann"], period="weekly")
    at = utc(2026, 11, 23, 10)
    ov = Override(person="sub", start=at, end=at + timedelta(hours=2))
    assert on_call_at(sched, at - timedelta(seconds=1), [ov]) == "ann"
    assert on_call_at(sched, at, [ov]) == "sub"
    assert on_call_at(sched, at + timedelta(hours=2), [ov]) == "ann"
    now = now_and_next(sched, at + timedelta(minutes=5), [ov])
    assert (now.person, now.until, now.next_person) == ("sub", at + timedelta(hours=2), "ann")


def test_the_override_made_last_wins_where_two_overlap() -> None:
    sched = schedule(users=["ann"], period="weekly")
    at = utc(2026, 11, 23, 10)
    first = Override(person="one", start=at, end=at + timedelta(hours=4), made=1)
    second = Override(
        person="two", start=at + timedelta(hours=1), end=at + timedelta(hours=2), made=2
    )
    assert on_call_at(sched, at + timedelta(minutes=30), [second, first]) == "one"
    assert on_call_at(sched, at + timedelta(hours=1), [second, first]) == "two"
    assert on_call_at(sched, at + timedelta(hours=3), [second, first]) == "one"
    segments = timeline(sched, at - timedelta(hours=1), at + timedelta(hours=5), [first, second])
    assert [s.person for s in segments] == ["ann", "one", "two", "one", "ann"]


def test_an_override_puts_someone_on_call_in_an_empty_schedule() -> None:
    empty = Schedule(layers=[])
    at = utc(2026, 11, 23, 10)
    assert on_call_at(empty, at) is None
    assert now_and_next(empty, at).person is None
    ov = Override(person="U0SUB0001", start=at, end=at + timedelta(hours=1))
    assert on_call_at(empty, at, [ov]) == "U0SUB0001"


# -- empty schedules --------------------------------------------------------------------------


def test_empty_schedules_have_nobody() -> None:
    at = utc(2026, 11, 23, 10)
    for sched in (Schedule(layers=[]), schedule(users=[], period="daily")):
        assert on_call_at(sched, at) is None
        now = now_and_next(sched, at)
        assert (now.person, now.until, now.next_person) == (None, None, None)
        assert [s.person for s in timeline(sched, at, at + timedelta(days=3))] == [None]


def test_a_single_person_rotation_has_no_next_change() -> None:
    now = now_and_next(schedule(users=["ann"], period="daily"), utc(2026, 11, 23, 10))
    assert (now.person, now.until, now.next_person) == ("ann", None, None)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        on_call_at(schedule(users=["a"]), datetime(2026, 1, 1))


# -- the policy file --------------------------------------------------------------------------


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_policy(text, file="p.yml", env={})
    return [str(p) for p in err.value.problems]


def test_schedule_fields_are_checked_with_their_path_and_line() -> None:
    text = (
        "people: {ann: {slack_id: U0ANN0001}}\n"
        "schedules:\n"
        "  s:\n"
        "    layers:\n"
        "      - users: [ann]\n"
        "        start: next monday\n"
        "      - users: [ann]\n"
        "        period: custom\n"
        "        custom_period: 30m\n"
        "      - users: [ann]\n"
        "        restrict: {days: [funday]}\n"
    )
    problems = _problems(text)
    assert any(p.startswith("p.yml:6: schedules.s.layers.0.start:") for p in problems), problems
    assert any("is not a date like 2026-01-05" in p for p in problems)
    assert any(
        p.startswith("p.yml:9: schedules.s.layers.1.custom_period:") and "at least 1h" in p
        for p in problems
    ), problems
    assert any("schedules.s.layers.2.restrict.days" in p for p in problems), problems


def test_restrict_reads_day_names() -> None:
    policy = parse_policy(
        "schedules:\n  s:\n    layers:\n      - users: []\n"
        "        restrict: {days: [sat, sun], start: '18:00', end: '09:00'}\n",
        file="p.yml",
        env={},
    )
    window = policy.schedules["s"].layers[0].restrict
    assert window == ActiveWindow(days=(5, 6), start=time(18), end=time(9))
