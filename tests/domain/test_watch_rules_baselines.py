"""The baseline rules on a synthetic two-week history with a daily pattern.

Weekdays (UTC business hours 09:00-17:00): the hour starting at h has 100 + 10 (h - 9) runs,
h - 9 of them failed, 1,000 tokens and $0.01 a run; weekday nights 5 runs an hour at $0.02;
weekends 10 runs an hour from 08:00 to 20:00 and 2 otherwise, 2,000 tokens and $0.03 a run.
Every expected figure below is worked out from that definition, not by the code under test.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.calendar import BusinessHours
from bot.domain.severity import Severity, SeverityRules
from bot.domain.watch.rules import DEVIATION_METRICS, Holding
from tests.domain.watch_rules_book import NOW, Book, Hour, fill, judge

START = datetime(2026, 11, 9, tzinfo=UTC)  # a Monday, 16 days and 14.5 hours before NOW
TODAY_9 = datetime(2026, 11, 25, 9, tzinfo=UTC)


def usual(at: datetime) -> Hour:
    weekday, h = at.weekday(), at.hour
    if weekday >= 5:
        return Hour(10 if 8 <= h < 20 else 2, tokens=2000, cost=0.03)
    if 9 <= h < 17:
        return Hour(100 + 10 * (h - 9), failed=h - 9, cost=0.01)
    return Hour(5, cost=0.02)


def today_from(hour: int, change: Callable[[Hour], Hour]) -> Callable[[datetime], Hour]:
    """The usual pattern, changed today from `hour` on."""

    def shape(at: datetime) -> Hour:
        normal = usual(at)
        if at.date() == NOW.date() and at.hour >= hour:
            return change(normal)
        return normal

    return shape


def book_of(shape: Callable[[datetime], Hour | None] = usual, since: datetime = START) -> Book:
    book = Book()
    fill(book, shape, since=since)
    return book


# -- spend ---------------------------------------------------------------------------------------

# a weekday: 1,080 business runs at $0.01 and 16 x 5 night runs at $0.02; a weekend day:
# 12 x 10 + 12 x 2 runs at $0.03. The 7 days before Wednesday 25th: 5 weekdays and a weekend.
WEEKDAY_SPEND = 1080 * 0.01 + 80 * 0.02  # 12.40
WEEKEND_SPEND = 144 * 0.03  # 4.32
DAILY_AVERAGE = (5 * WEEKDAY_SPEND + 2 * WEEKEND_SPEND) / 7  # 10.0914...
# today to 14:30: 9 night hours of 5 runs at $0.02, hours 9-13 (600 runs) and 14:00-14:30 (31
# minutes of 150 runs an hour: 30 minutes of 3 runs and one of 2) at $0.01
TODAY_SPEND = 45 * 0.02 + (600 + 92) * 0.01  # 7.82
# the last 24 hours from Tuesday 14:31: Tuesday 14:00 starts before them and its minutes are
# gone, so it does not count; Tuesday 15-16 (330 runs), 7 + 9 night hours, today's 692 runs
LAST_24H_SPEND = (330 + 692) * 0.01 + 16 * 5 * 0.02  # 11.82


def test_spend_today_against_the_daily_average_of_the_seven_days_before() -> None:
    found = judge(book_of().history())["spend-today"]
    assert found.holding is Holding.CLEAR
    assert found.figures["baseline"] == pytest.approx(DAILY_AVERAGE)
    assert found.figures["value"] == pytest.approx(TODAY_SPEND)
    assert found.text == (
        "spend today $7.82 to 14:31, 77 % of the daily average $10.09 of the previous 7 days, "
        "not above 150 %"
    )


@pytest.mark.parametrize(("factor", "holding"), [(0.77, Holding.FIRING), (0.78, Holding.CLEAR)])
def test_spend_today_just_above_and_below_its_factor(factor: float, holding: Holding) -> None:
    # 7.82 / 10.0914 = 0.7749
    rules = SeverityRules(daily_spend_p3_factor=factor)
    found = judge(book_of().history(), rules=rules)["spend-today"]
    assert found.holding is holding
    assert found.severity is Severity.P3


def test_spend_today_says_when_it_crossed() -> None:
    # from 09:00 today a run costs $0.03: $0.90 of night runs, then hours 9-12 (100 + 110 +
    # 120 + 130 runs) make $14.70; hour 13 has 3 runs ($0.09) a minute in its first 20
    # minutes, and 1.5 x 10.0914 = 15.137 is passed in its 5th minute
    shape = today_from(9, lambda h: h._replace(cost=0.03))
    limit = 1.5 * DAILY_AVERAGE
    assert limit > 0.90 + (100 + 110 + 120 + 130) * 0.03 + 4 * 0.09
    assert limit < 0.90 + (100 + 110 + 120 + 130) * 0.03 + 5 * 0.09
    found = judge(book_of(shape).history())["spend-today"]
    assert found.holding is Holding.FIRING
    assert found.since == datetime(2026, 11, 25, 13, 4, tzinfo=UTC)
    assert found.last_held == NOW
    assert "above 150 % since 13:04" in found.text


def test_yesterdays_spend_still_held_at_midnight() -> None:
    # Tuesday's business runs at $0.03: 1,080 x 0.03 + 80 x 0.02 = 34.00, above 1.5 x the
    # average of the 7 days before it (the same 5 weekdays and a weekend: 10.09)
    def shape(at: datetime) -> Hour:
        normal = usual(at)
        if at.date() == datetime(2026, 11, 24).date() and 9 <= at.hour < 17:
            return normal._replace(cost=0.03)
        return normal

    now = datetime(2026, 11, 25, 0, 5, 30, tzinfo=UTC)
    book = Book()
    fill(book, shape, since=START, now=now)
    found = judge(book.history(), now=now)["spend-today"]
    assert found.holding is Holding.CLEAR
    assert found.last_held == datetime(2026, 11, 25, tzinfo=UTC)
    later = now + timedelta(minutes=15)
    assert judge(book.history(), now=later)["spend-today"].last_held is None


@pytest.mark.parametrize(("factor", "holding"), [(1.17, Holding.FIRING), (1.18, Holding.CLEAR)])
def test_spend_over_24_hours_against_the_daily_average(factor: float, holding: Holding) -> None:
    # 11.82 / 10.0914 = 1.1713
    rules = SeverityRules(daily_spend_p3_factor=1.0, daily_spend_p2_factor=factor)
    found = judge(book_of().history(), rules=rules)["spend-24h"]
    assert found.figures["value"] == pytest.approx(LAST_24H_SPEND)
    assert found.holding is holding
    assert found.severity is Severity.P2


def test_spend_over_24_hours_since_is_judged_to_the_hour() -> None:
    # any 24 weekday hours cost 12.40 >= 1.17 x 10.0914 = 11.807; back into Sunday they fall
    # below: the 24 hours ending with Monday's 16:00 hour hold Sunday 17-23 (3 x 10 + 4 x 2
    # runs at $0.03), Monday's nights to 09:00 and its business hours 9-16; those ending with
    # its 15:00 hour hold Sunday 16-23 (4 x 10 + 4 x 2) and Monday's business hours 9-15
    limit = 1.17 * DAILY_AVERAGE
    assert limit <= (3 * 10 + 4 * 2) * 0.03 + 9 * 5 * 0.02 + 1080 * 0.01
    assert limit > (4 * 10 + 4 * 2) * 0.03 + 9 * 5 * 0.02 + 910 * 0.01
    rules = SeverityRules(daily_spend_p3_factor=1.0, daily_spend_p2_factor=1.17)
    found = judge(book_of().history(), rules=rules)["spend-24h"]
    assert found.holding is Holding.FIRING
    assert found.since == datetime(2026, 11, 23, 16, tzinfo=UTC)
    assert found.last_held == NOW
    assert found.title == "support-bot: spend over 24 h at 1.17x the daily average"
    assert found.text.startswith(
        "spend over the last 24 h to 14:31 $11.82, 1.17x the daily average $10.09 of the "
        "previous 7 days, at least 1.17x since Mon 16:00"
    )


# -- tokens and cost per run ---------------------------------------------------------------------

# the last hour (13:31-14:30) touches hours 13 and 14; on the previous 7 days those are 140 +
# 150 runs of 1,000 tokens on the 5 weekdays and 10 + 10 of 2,000 on the weekend
TOKENS_BASELINE = (5 * 290 * 1000 + 2 * 20 * 2000) / (5 * 290 + 2 * 20)  # 1,026.85


@pytest.mark.parametrize(("tokens", "holding"), [(1334, Holding.CLEAR), (1335, Holding.FIRING)])
def test_tokens_per_run_against_the_same_hours(tokens: int, holding: Holding) -> None:
    # 1.3 x 1,026.85 = 1,334.90
    shape = today_from(13, lambda h: h._replace(tokens=tokens))
    found = judge(book_of(shape).history())["tokens-per-run"]
    assert found.figures["baseline"] == pytest.approx(TOKENS_BASELINE)
    assert found.figures["value"] == tokens
    assert found.holding is holding
    assert found.severity is Severity.P3


def test_tokens_per_run_since_is_the_first_minute_the_hour_was_above() -> None:
    # as of 13:58 the hour holds 2 runs of 12:59 at 1,000 tokens and 138 at 1,335: 1,330.2
    shape = today_from(13, lambda h: h._replace(tokens=1335))
    assert 1.3 * TOKENS_BASELINE > (2 * 1000 + 138 * 1335) / 140
    found = judge(book_of(shape).history())["tokens-per-run"]
    assert found.since == datetime(2026, 11, 25, 13, 59, tzinfo=UTC)
    assert found.text.startswith(
        "tokens per run 1,335 tokens over 150 runs over 1 h to 14:31, 130 % of the baseline "
        "1,027 tokens (the same hours of the previous 7 days), above 130 % since 13:59"
    )


# the 168 hours before 14:00 today: 40 business hours ($0.01 a run), 48 weekend hours ($0.03)
# and 80 other weekday hours ($0.02): the median is $0.02
COST_BASELINE = 0.02


@pytest.mark.parametrize(("cost", "holding"), [(0.0399, Holding.CLEAR), (0.0401, Holding.FIRING)])
def test_cost_per_run_against_the_seven_day_median(cost: float, holding: Holding) -> None:
    shape = today_from(13, lambda h: h._replace(cost=cost))
    found = judge(book_of(shape).history())["cost-per-run"]
    assert found.figures["baseline"] == pytest.approx(COST_BASELINE)
    assert found.holding is holding
    assert found.severity is Severity.P2
    assert "median of 168 hours of the previous 7 days" in found.text


def test_a_pinned_cost_per_run_needs_no_history() -> None:
    young = book_of(since=NOW - timedelta(days=2))
    unpinned = judge(young.history())["cost-per-run"]
    assert unpinned.holding is Holding.NO_BASELINE
    assert unpinned.text == "not enough history (2 days)"
    pinned = judge(young.history(), pinned_cost_per_run=0.0049)["cost-per-run"]
    # the last hour at $0.01 a run is 204 % of $0.0049
    assert pinned.holding is Holding.FIRING
    assert pinned.figures["baseline"] == 0.0049
    assert "pinned in the policy" in pinned.text


def test_less_than_seven_days_of_history_has_no_baseline_but_absolute_rules_work() -> None:
    shape = today_from(12, lambda h: h._replace(failed=h.runs // 4))  # 25 % since noon
    young = book_of(shape, since=NOW - timedelta(days=3, hours=2))
    found = judge(young.history())
    for rule in (
        "tokens-per-run",
        "cost-per-run",
        "spend-today",
        "spend-24h",
        *(f"deviation-{m}" for m in DEVIATION_METRICS),
    ):
        assert found[rule].holding is Holding.NO_BASELINE, rule
        assert found[rule].text == "not enough history (3 days)", rule
    assert found["error-rate"].holding is Holding.FIRING
    assert found["error-rate-critical"].holding is Holding.FIRING


# -- deviation -----------------------------------------------------------------------------------

# business hours of the 7 days before today: 5 weekdays of hours 9-16
RUNS_BASELINE = [100 + 10 * (h - 9) for _day in range(5) for h in range(9, 17)]
ERROR_BASELINE = [(h - 9) / (100 + 10 * (h - 9)) for _day in range(5) for h in range(9, 17)]


def test_the_baselines_are_the_business_hours_mean_and_sample_stddev() -> None:
    found = judge(book_of().history())
    runs = found["deviation-runs-per-hour"]
    assert runs.figures["baseline"] == pytest.approx(135.0)
    # deviations -35..35 by 10: squares sum to 4,200 a day, 21,000 over 40 hours
    assert runs.figures["stddev"] == pytest.approx(math.sqrt(21000 / 39))
    assert runs.figures["stddev"] == pytest.approx(statistics.stdev(RUNS_BASELINE))
    assert runs.figures["baseline_hours"] == 40
    assert runs.holding is Holding.CLEAR
    errors = found["deviation-error-rate"]
    assert errors.figures["baseline"] == pytest.approx(statistics.mean(ERROR_BASELINE))
    assert errors.figures["stddev"] == pytest.approx(statistics.stdev(ERROR_BASELINE))
    assert errors.holding is Holding.CLEAR
    assert "within the band" in runs.text


def busy(hour: Hour) -> Hour:
    return hour._replace(runs=300)


def test_runs_per_hour_outside_two_sigma_for_more_than_four_business_hours() -> None:
    # 300 runs an hour against 135 +- 2 x 23.2 since 10:00: 10-13 and half of 14
    found = judge(book_of(today_from(10, busy)).history())["deviation-runs-per-hour"]
    assert found.holding is Holding.FIRING
    assert found.severity is Severity.P2
    assert found.since == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert found.figures["streak_minutes"] == 4 * 60 + 31
    assert found.figures["value"] == pytest.approx(300.0)
    assert found.text.startswith("runs/h 300.0 this hour; outside ±46.4 of the baseline 135.0")
    assert found.text.endswith("since 10:00 (4 h 31 min of business hours)")


def test_runs_per_hour_for_three_and_a_half_business_hours_is_not_yet_p2() -> None:
    found = judge(book_of(today_from(11, busy)).history())["deviation-runs-per-hour"]
    assert found.holding is Holding.CLEAR
    assert found.text.endswith("outside it for 3 h 31 min of business hours, not more than 4 h")


def test_exactly_four_business_hours_is_not_more_than_four() -> None:
    now = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)  # 14:00's hour too young to judge
    book = Book()
    fill(book, today_from(10, busy), since=START, now=now)
    found = judge(book.history(), now=now)["deviation-runs-per-hour"]
    assert found.holding is Holding.CLEAR
    assert found.figures["streak_minutes"] == 240
    assert found.last_held is None


def test_a_streak_that_just_ended_last_held_as_the_hour_began() -> None:
    # busy 09:00-14:00 (5 complete hours), then back to the usual 150 an hour
    def shape(at: datetime) -> Hour:
        normal = usual(at)
        if at.date() == NOW.date() and 9 <= at.hour < 14:
            return busy(normal)
        return normal

    found = judge(book_of(shape).history())["deviation-runs-per-hour"]
    assert found.holding is Holding.CLEAR
    assert found.last_held == datetime(2026, 11, 25, 14, tzinfo=UTC)


def test_an_hour_back_inside_the_band_breaks_the_streak() -> None:
    def shape(at: datetime) -> Hour:
        normal = usual(at)
        if at.date() == NOW.date() and at.hour >= 9 and at.hour != 12:
            return busy(normal)
        return normal

    found = judge(book_of(shape).history())["deviation-runs-per-hour"]
    assert found.holding is Holding.CLEAR
    assert found.figures["streak_minutes"] == 60 + 31


def test_an_hour_with_too_few_runs_cannot_be_judged_for_a_rate() -> None:
    # a 50 % error rate from 09:00, but hour 11 has only 19 runs: the streak is 12-14
    def shape(at: datetime) -> Hour:
        normal = usual(at)
        if at.date() == NOW.date() and at.hour >= 9:
            runs = 19 if at.hour == 11 else normal.runs
            return normal._replace(runs=runs, failed=runs // 2)
        return normal

    found = judge(book_of(shape).history())["deviation-error-rate"]
    assert found.holding is Holding.CLEAR
    assert found.figures["streak_minutes"] == 2 * 60 + 31
    firing = judge(book_of(shape).history(), rules=SeverityRules(min_runs=19))
    assert firing["deviation-error-rate"].holding is Holding.FIRING


def test_a_constant_baseline_does_not_fire_on_noise() -> None:
    # confidence is 0.8 in every hour: sigma 0, the band is 5 % of the mean (0.04)
    slightly = today_from(9, lambda h: h._replace(confidence=0.83))
    found = judge(book_of(slightly).history())["deviation-confidence"]
    assert found.figures["stddev"] == pytest.approx(0.0)
    assert found.figures["band"] == pytest.approx(0.04)
    assert found.holding is Holding.CLEAR
    assert "constant baseline: band ±0.04" in found.text
    worse = today_from(9, lambda h: h._replace(confidence=0.7))
    assert judge(book_of(worse).history())["deviation-confidence"].holding is Holding.FIRING


def test_a_metric_that_is_not_reported_has_no_baseline() -> None:
    found = judge(book_of().history())["deviation-p95-latency"]
    assert found.holding is Holding.NO_BASELINE
    assert found.text.startswith("fewer than 2 business hours with enough runs")


def test_nights_and_weekends_neither_count_nor_break_the_streak() -> None:
    # busy since Friday 13:00; on Monday at 09:30 Friday's 13-16 (4 h) and Monday's 09:00 hour
    # (30 min so far, judged) make 4 h 31 min
    now = datetime(2026, 11, 23, 9, 30, 30, tzinfo=UTC)

    def shape(at: datetime) -> Hour:
        normal = usual(at)
        if at >= datetime(2026, 11, 20, 13, tzinfo=UTC) and 9 <= at.hour < 17:
            return busy(normal)
        return normal

    book = Book()
    fill(book, shape, since=START, now=now)
    found = judge(book.history(), now=now)["deviation-runs-per-hour"]
    assert found.holding is Holding.FIRING
    assert found.since == datetime(2026, 11, 20, 13, tzinfo=UTC)
    assert found.figures["streak_minutes"] == 4 * 60 + 31


# -- a week with a DST change --------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
# Wednesday after the change back to CET (Sunday 25 October 2026, 03:00 CEST -> 02:00 CET)
DST_NOW = datetime(2026, 10, 28, 14, 30, 30, tzinfo=BERLIN)


def test_the_same_hours_baseline_follows_local_time_across_dst() -> None:
    def shape(at: datetime) -> Hour:
        local = at.astimezone(BERLIN)
        same = local.hour in (13, 14)
        if local.date() == DST_NOW.date() and same:
            return Hour(60, tokens=1400)
        return Hour(60, tokens=1000 if same else 5000)

    book = Book()
    fill(book, shape, since=datetime(2026, 10, 17, tzinfo=UTC), now=DST_NOW)
    hours = BusinessHours(timezone="Europe/Berlin")
    found = judge(book.history(), now=DST_NOW, hours=hours)
    tokens = found["tokens-per-run"]
    # local 13:00-15:00 on each day: 1,000 tokens a run, whether CET or CEST (the days before
    # the change are 23 hours apart in UTC from those after it)
    assert tokens.figures["baseline"] == pytest.approx(1000.0)
    assert tokens.holding is Holding.FIRING
    assert "to 14:31" in tokens.text
    # the 7 local days before today: 24 hours of 60 runs at $0.01, and Sunday's 25 hours
    spend = found["spend-today"]
    assert spend.figures["baseline"] == pytest.approx((6 * 24 + 25) * 60 * 0.01 / 7)
