"""Silence: judged in business hours only, from the last run and the business calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.calendar import BusinessHours
from bot.domain.severity import Severity
from bot.domain.watch.history import epoch_ms
from bot.domain.watch.rules import Finding, Holding
from tests.domain.watch_rules_book import Book, judge

EVERY_30M = timedelta(minutes=30)
HOURS = BusinessHours()  # UTC, Monday to Friday, 09:00-17:00


def silence(
    last_run: datetime,
    now: datetime,
    *,
    expect_every: timedelta | None = EVERY_30M,
    silence_off: bool = False,
    hours: BusinessHours = HOURS,
) -> Finding:
    book = Book()
    book.since(last_run - timedelta(days=10))
    found = judge(
        book.history(last_run_ms=epoch_ms(last_run)),
        now=now,
        hours=hours,
        expect_every=expect_every,
        silence_off=silence_off,
    )
    return found["silence"]


@pytest.mark.parametrize(
    ("last_run", "holding"),
    [
        (datetime(2026, 11, 25, 10, 31, tzinfo=UTC), Holding.CLEAR),  # 29 minutes
        (datetime(2026, 11, 25, 10, 30, tzinfo=UTC), Holding.CLEAR),  # 30: not more
        (datetime(2026, 11, 25, 10, 29, tzinfo=UTC), Holding.FIRING),  # 31
    ],
)
def test_no_run_for_expect_every_in_business_hours(last_run: datetime, holding: Holding) -> None:
    found = silence(last_run, datetime(2026, 11, 25, 11, 0, tzinfo=UTC))
    assert found.holding is holding
    assert found.severity is Severity.P2


def test_silence_says_since_when_and_how_long() -> None:
    found = silence(
        datetime(2026, 11, 25, 10, 0, tzinfo=UTC), datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    )
    assert found.holding is Holding.FIRING
    assert found.since == datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    assert found.last_held == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    assert found.text == (
        "no run for 1 h of business hours (expected every 30 min); last run 10:00"
    )
    assert found.title == "support-bot: no run for 30 min of business hours"


def test_a_quiet_weekend_is_no_silence() -> None:
    friday = datetime(2026, 11, 27, 16, 55, tzinfo=UTC)
    found = silence(friday, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))  # Saturday
    assert found.holding is Holding.OFF
    assert "outside business hours" in found.text
    # Monday 09:20: 5 minutes on Friday and 20 on Monday, 25 minutes of business time
    monday = silence(friday, datetime(2026, 11, 30, 9, 20, tzinfo=UTC))
    assert monday.holding is Holding.CLEAR
    assert monday.figures["business_minutes_since_run"] == 25
    later = silence(friday, datetime(2026, 11, 30, 9, 26, tzinfo=UTC))
    assert later.holding is Holding.FIRING
    assert later.since == datetime(2026, 11, 30, 9, 25, tzinfo=UTC)


def test_a_quiet_night_is_no_silence() -> None:
    evening = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    found = silence(evening, datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
    assert found.holding is Holding.OFF
    morning = silence(evening, datetime(2026, 11, 25, 9, 25, tzinfo=UTC))
    assert morning.holding is Holding.CLEAR


def test_an_ongoing_silence_still_holds_at_night_so_its_incident_stays_open() -> None:
    afternoon = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    found = silence(afternoon, datetime(2026, 11, 24, 22, 0, tzinfo=UTC))
    assert found.holding is Holding.OFF
    assert found.last_held == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


def test_zero_runs_over_a_whole_business_day() -> None:
    monday = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    # without expect_every only a whole business day without runs is silence
    tuesday_end = silence(monday, datetime(2026, 11, 24, 16, 59, tzinfo=UTC), expect_every=None)
    assert tuesday_end.holding is Holding.CLEAR
    wednesday = silence(monday, datetime(2026, 11, 25, 9, 0, 30, tzinfo=UTC), expect_every=None)
    assert wednesday.holding is Holding.FIRING
    assert wednesday.title == "support-bot: no run over a business day"
    assert wednesday.since == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    assert wednesday.text == (
        "zero runs over the business day Tue 24 Nov (Tue 09:00 to Tue 17:00); last run Mon 16:00"
    )


def test_the_day_rule_waits_for_a_business_day_not_a_weekend() -> None:
    friday = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    monday = silence(friday, datetime(2026, 11, 30, 16, 0, tzinfo=UTC), expect_every=None)
    assert monday.holding is Holding.CLEAR
    # Monday was a whole business day without a run: silent from Tuesday's opening
    evening = silence(friday, datetime(2026, 11, 30, 17, 30, tzinfo=UTC), expect_every=None)
    assert evening.holding is Holding.OFF
    tuesday = silence(friday, datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC), expect_every=None)
    assert tuesday.holding is Holding.FIRING
    assert tuesday.since == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def test_expect_every_off_has_no_silence_rule() -> None:
    found = silence(
        datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 11, 0, tzinfo=UTC),
        expect_every=None,
        silence_off=True,
    )
    assert found.holding is Holding.OFF
    assert found.text == "expect_every is off"
    assert found.last_held is None


def test_a_workflow_never_seen_is_not_silent() -> None:
    found = judge(Book().history(), now=datetime(2026, 11, 25, 11, 0, tzinfo=UTC))["silence"]
    assert found.holding is Holding.OFF
    assert found.text == "no runs seen yet"


def test_silence_in_the_business_hours_time_zone() -> None:
    hours = BusinessHours(timezone="Europe/Berlin")
    # 08:45 UTC is 09:45 in Berlin: 45 minutes of business time since 08:00 UTC
    found = silence(
        datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 8, 45, tzinfo=UTC),
        hours=hours,
    )
    assert found.holding is Holding.FIRING
    assert found.since == datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    assert found.text.endswith("last run 09:00")
