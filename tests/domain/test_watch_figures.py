"""Watch figures from a hand-checked synthetic week, with `now` and the zone passed in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.watch.figures import (
    Part,
    Reads,
    WatchFigures,
    WatchHistory,
    compute_figures,
    local_midnight,
    percentile,
    reads,
    week_points,
)
from bot.domain.watch.history import (
    Run,
    RunStatus,
    Slot,
    Tally,
    Version,
    VersionKind,
    fold,
    hour_of,
    minute_of,
)
from bot.rendering.watch import cost_text, figures_line, latency_text
from tests.support.watch_week import NOW, WORKFLOW, week_runs

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30 all year: midnight is 18:30 UTC


def history(
    runs: Iterable[Run],
    *,
    now: datetime,
    zone: tzinfo = UTC,
    minutes_kept: timedelta = timedelta(days=35),
    workflow: str = WORKFLOW,
) -> tuple[WatchHistory, Reads]:
    """Return what the store would hand the figures at `now`: the parts `reads` asks for, added
    up from the runs' minute and hour tallies (minutes older than `minutes_kept` pruned)."""
    plan = reads(now, zone, minutes_kept=minutes_kept)
    kept_since = minute_of(now - minutes_kept)
    tallies = fold(runs)
    minutes = {minute: tally for (_wf, minute), tally in tallies.items() if minute >= kept_since}
    hours: dict[int, Tally] = {}
    seen: dict[tuple[VersionKind, str], tuple[int, int]] = {}
    for (_wf, minute), tally in tallies.items():
        hours.setdefault(hour_of(minute), Tally()).merge(tally)
        for key, (first, last) in tally.versions.items():
            was = seen.get(key, (first, last))
            seen[key] = (min(was[0], first), max(was[1], last))
    sums: dict[Part, Tally] = {}
    for part in plan.parts:
        inside = [
            tally
            for start, tally in (hours if part.hourly else minutes).items()
            if part.since <= start < part.until
        ]
        if inside:
            total = sums[part] = Tally()
            for tally in inside:
                total.merge(tally)
    recent = sorted(
        entry
        for minute, tally in minutes.items()
        if plan.recent_since <= minute < plan.recent_until
        for entry in tally.recent
    )
    versions = [
        Version(
            workflow,
            kind,
            value,
            datetime.fromtimestamp(first / 1000, UTC),
            datetime.fromtimestamp(last / 1000, UTC),
        )
        for (kind, value), (first, last) in seen.items()
    ]
    last_at = [tally.last_at_ms for tally in hours.values() if tally.last_at_ms is not None]
    found = WatchHistory(
        workflow=workflow,
        sums=sums,
        recent=recent,
        versions=versions,
        first_minute=min(hours) if hours else None,
        last_at_ms=max(last_at) if last_at else None,
    )
    return found, plan


def figures_at(
    runs: Iterable[Run],
    now: datetime,
    zone: tzinfo = UTC,
    *,
    minutes_kept: timedelta = timedelta(days=35),
    pinned_cost_per_run: float | None = None,
) -> WatchFigures:
    found, plan = history(runs, now=now, zone=zone, minutes_kept=minutes_kept)
    return compute_figures(found, plan, zone=zone, pinned_cost_per_run=pinned_cost_per_run)


def hour_slots(runs: Iterable[Run]) -> list[Slot]:
    hours: dict[int, Tally] = {}
    for (_wf, minute), tally in fold(runs).items():
        hours.setdefault(hour_of(minute), Tally()).merge(tally)
    return [Slot(WORKFLOW, start, 60, tally) for start, tally in sorted(hours.items())]


# -- the synthetic week (see tests/support/watch_week.py for the runs) --------------------------


def test_a_synthetic_week_gives_the_hand_checked_figures() -> None:
    f = figures_at(week_runs(), NOW)
    assert f.workflow == WORKFLOW
    # the last hour is 13:03 .. 14:02: the 8 runs of the table, not the 13:02 error
    assert f.runs_last_hour == 8
    # 13:53 .. 14:02: the 13:55 error, the 14:00 timeout, the 14:01 ok -> 2 of 3 failed
    assert f.error_rate_10m == pytest.approx(2 / 3)
    # 12:03 .. 14:02: the 12:30 background run, the 13:02 error and the 8 (2 failed) -> 3 of 10
    assert f.error_rate_2h == pytest.approx(0.3)
    # today: 13 background runs (2 errors), the 12:02 and 13:02 errors, the 8 (2 failed) -> 6/23
    assert f.error_rate_today == pytest.approx(6 / 23)
    # 100, 200, 300, 400, 500, 700, 900, 1000 ms: the 4th of 8 (p50's rank 4) is alone in
    # (320, 480] -> 320 + 160 x 1/1 = 480; p95's rank 7.6 falls in (960, 1280], capped at the
    # maximum 1000 -> 960 + 40 x 0.6 = 984
    assert f.latency_p50_ms_1h == pytest.approx(480)
    assert f.latency_p95_ms_1h == pytest.approx(984)
    assert f.latency_max_ms_1h == 1000
    assert f.last_latencies_ms == (700, 900, 1000)
    # 2,000 + 1,000 tokens a run in the last hour; the 13:30 (1,500) and 14:30 (2,500) runs of
    # the 7 days before -> (7 x 1,500 + 7 x 2,500) / 14 = 2,000 (Nov 28's 9,000 not reached)
    assert f.tokens_per_run_1h == pytest.approx(3000)
    assert f.tokens_per_run_baseline == pytest.approx(2000)
    # $0.01 + ... + $0.08 = $0.36 over 8 runs; days D-1..D-7 cost $0.01..$0.07 a run -> $0.04
    assert f.cost_per_run_1h == pytest.approx(0.045)
    assert f.cost_per_run_baseline == pytest.approx(0.04)
    # today 13 x $0.004 + $0.36 = $0.412; the 7 days 24 runs x ($0.01 + ... + $0.07) = $6.72 -> $0.96/day
    assert f.spend_today_usd == pytest.approx(0.412)
    assert f.spend_7d_daily_avg_usd == pytest.approx(0.96)
    # 13:33 .. 14:02: the 13:35 refusal among 5 runs (the 13:25 one is older)
    assert f.refusal_rate_30m == pytest.approx(0.2)
    assert f.confidence_mean_1h == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)
    assert f.handoff_rate_1h == pytest.approx(1 / 8)
    assert (f.model, f.prompt_version) == ("gpt-4o-2024-08-06", "v12")
    assert f.last_run_at == datetime(2026, 12, 6, 14, 1, 15, tzinfo=UTC)
    # first hour Nov 28 00:00, now Dec 6 14:02 -> 8 whole days
    assert f.history_days == 8
    assert f.baseline_note is None


def test_the_figures_serialise_with_exactly_the_documented_keys() -> None:
    data = figures_at(week_runs(), NOW).as_json()
    assert list(data) == [
        "workflow", "runs_last_hour", "error_rate_10m", "error_rate_2h", "error_rate_today",
        "latency_p50_ms_1h", "latency_p95_ms_1h", "latency_max_ms_1h", "last_latencies_ms",
        "tokens_per_run_1h", "tokens_per_run_baseline", "cost_per_run_1h",
        "cost_per_run_baseline", "spend_today_usd", "spend_7d_daily_avg_usd", "refusal_rate_30m",
        "confidence_mean_1h", "handoff_rate_1h", "model", "prompt_version", "last_run_at",
        "history_days", "baseline_note", "rules",
    ]  # fmt: skip
    assert data["last_run_at"] == "2026-12-06T14:01:15Z"
    assert data["last_latencies_ms"] == [700, 900, 1000]


def test_the_synthetic_week_reads_as_one_line() -> None:
    line = figures_line(figures_at(week_runs(), NOW), now=NOW)
    assert line == (
        "support-bot — 8 runs in the last hour · errors 66.7 % (10 min), 30.0 % (2 h), "
        "26.1 % today · p50 480 ms, p95 984 ms; last 3: 700 ms, 900 ms, 1.0 s · tokens/run "
        "3,000 (baseline 2,000) · cost/run $0.045 (baseline $0.040) · spend today $0.41 "
        "(7-day average $0.96/day) · refusals 20.0 % · confidence 0.75 · handoffs 12.5 % · "
        "gpt-4o-2024-08-06, prompt v12 · last run 14:01 UTC"
    )


def test_a_minute_later_the_windows_move_on() -> None:
    # at 14:13:30 the last hour is 13:14 .. 14:13: the 13:05 run has left it, and the last 10
    # minutes (14:04 .. 14:13) hold no run at all
    f = figures_at(week_runs(), NOW + timedelta(minutes=11))
    assert f.runs_last_hour == 7
    assert f.error_rate_10m is None
    assert f.handoff_rate_1h == pytest.approx(1 / 7)


# -- the 7-day history rule ---------------------------------------------------------------------


def test_baselines_need_seven_days_of_history() -> None:
    # only what ran since Dec 3: 3 days and 14 hours of history
    recent = [run for run in week_runs() if run.at >= datetime(2026, 12, 3, tzinfo=UTC)]
    f = figures_at(recent, NOW)
    assert f.history_days == 3
    assert f.baseline_note == "not enough history (3 days)"
    assert f.tokens_per_run_baseline is None
    assert f.cost_per_run_baseline is None
    assert f.spend_7d_daily_avg_usd is None
    # the figures of now do not need history
    assert f.tokens_per_run_1h == pytest.approx(3000)
    assert f.spend_today_usd == pytest.approx(0.412)
    assert "baselines: not enough history (3 days)" in figures_line(f, now=NOW)


def test_seven_days_to_the_hour_is_enough() -> None:
    runs = [run for run in week_runs() if run.at >= datetime(2026, 11, 29, 14, tzinfo=UTC)]
    f = figures_at(runs, NOW)
    # first hour Nov 29 14:00, now - 7 days is Nov 29 14:02
    assert f.history_days == 7
    assert f.baseline_note is None
    # Nov 29 (D-7) lost its 13:30 run: 6 x 1,500 + 7 x 2,500 tokens over 13 runs
    assert f.tokens_per_run_baseline == pytest.approx((6 * 1500 + 7 * 2500) / 13)
    one_hour_short = [run for run in runs if run.at >= datetime(2026, 11, 29, 15, tzinfo=UTC)]
    assert figures_at(one_hour_short, NOW).baseline_note == "not enough history (6 days)"


def test_a_pinned_cost_baseline_needs_no_history() -> None:
    recent = [run for run in week_runs() if run.at >= datetime(2026, 12, 6, 13, tzinfo=UTC)]
    f = figures_at(recent, NOW, pinned_cost_per_run=0.05)
    assert f.history_days == 0
    assert f.cost_per_run_baseline == 0.05
    assert f.baseline_note == "not enough history (0 days)"
    # and it wins over the median when there is history
    assert figures_at(week_runs(), NOW, pinned_cost_per_run=0.05).cost_per_run_baseline == 0.05


# -- no data ------------------------------------------------------------------------------------


def test_a_workflow_without_history_has_only_null_figures() -> None:
    plan = reads(NOW, UTC, minutes_kept=timedelta(days=35))
    f = compute_figures(WatchHistory("never-ran"), plan, zone=UTC)
    assert f == WatchFigures(workflow="never-ran", baseline_note="no history yet")
    data = f.as_json()
    assert {key for key, value in data.items() if value not in (None, [])} == {
        "workflow",
        "baseline_note",
    }
    assert not f.seen
    assert figures_line(f) == "never-ran — no runs seen"


def test_a_quiet_workflow_has_counts_of_zero_and_no_rates() -> None:
    # one run a day ago: nothing in the last hour, nothing today
    runs = [Run(WORKFLOW, "only", NOW - timedelta(days=1), latency_ms=300.0, cost_usd=0.2)]
    f = figures_at(runs, NOW)
    assert f.runs_last_hour == 0
    assert f.spend_today_usd == 0.0
    for rate in (f.error_rate_10m, f.error_rate_2h, f.error_rate_today, f.refusal_rate_30m):
        assert rate is None
    assert f.latency_p50_ms_1h is None and f.latency_max_ms_1h is None
    assert f.last_latencies_ms == ()
    assert f.tokens_per_run_1h is None and f.cost_per_run_1h is None
    assert f.confidence_mean_1h is None and f.handoff_rate_1h is None
    assert f.last_run_at == NOW - timedelta(days=1)
    assert f.history_days == 1
    assert figures_line(f, now=NOW) == (
        "support-bot — 0 runs in the last hour · errors n/a (10 min), n/a (2 h), n/a today · "
        "spend today $0.00 · last run 2026-12-05 14:02 UTC · baselines: not enough history "
        "(1 day)"
    )


def test_runs_that_report_no_tokens_or_cost_have_no_per_run_figures() -> None:
    runs = [Run(WORKFLOW, f"r{i}", NOW - timedelta(minutes=i)) for i in range(5)]
    f = figures_at(runs, NOW)
    assert f.runs_last_hour == 5
    assert f.tokens_per_run_1h is None
    assert f.cost_per_run_1h is None
    assert f.error_rate_10m == 0.0


# -- local midnight in a zone that is not on the hour -------------------------------------------


def _costly(at: datetime, cost: float, status: RunStatus = RunStatus.OK) -> Run:
    return Run(WORKFLOW, f"k-{at.isoformat()}", at, status=status, cost_usd=cost)


def test_today_starts_at_local_midnight_in_kolkata() -> None:
    # NOW is 19:32 in Kolkata; today began at Dec 5 18:30 UTC
    assert local_midnight(NOW.astimezone(KOLKATA).date(), KOLKATA) == minute_of(
        datetime(2026, 12, 5, 18, 30, tzinfo=UTC)
    )
    runs = [
        _costly(datetime(2026, 11, 28, 18, 29, tzinfo=UTC), 16.0),  # Nov 28 23:59 local: D-8
        _costly(datetime(2026, 11, 28, 18, 30, tzinfo=UTC), 8.0),  # Nov 29 00:00 local: D-7
        _costly(datetime(2026, 12, 4, 18, 29, tzinfo=UTC), 4.0),  # Dec 4 23:59 local: D-2
        _costly(datetime(2026, 12, 5, 18, 0, tzinfo=UTC), 2.0),  # Dec 5 23:30 local: D-1
        _costly(datetime(2026, 12, 5, 18, 29, tzinfo=UTC), 1.0, RunStatus.ERROR),  # D-1
        _costly(datetime(2026, 12, 5, 18, 30, tzinfo=UTC), 0.1),  # Dec 6 00:00 local: today
        _costly(datetime(2026, 12, 6, 10, 0, tzinfo=UTC), 0.2),  # today
    ]
    f = figures_at(runs, NOW, KOLKATA)
    # today: the 18:30 and 10:00 runs, neither failed; the 18:29 error was yesterday
    assert f.spend_today_usd == pytest.approx(0.3)
    assert f.error_rate_today == 0.0
    # first hour Nov 28 18:00 UTC, now Dec 6 14:02 -> 7 days 20 hours
    assert f.history_days == 7
    # the 7 local days before today: D-1 $3 (2 runs), D-2 $4, D-7 $8 -> $15 / 7; cost per run
    # on the days with runs: $1.50, $4, $8 -> median $4
    assert f.spend_7d_daily_avg_usd == pytest.approx(15 / 7)
    assert f.cost_per_run_baseline == pytest.approx(4.0)
    # the UTC zone cuts the same runs at UTC midnight instead: today is only the 10:00 run
    assert figures_at(runs, NOW, UTC).spend_today_usd == pytest.approx(0.2)


def at(day: int, hour: int, minute: int = 0) -> int:
    return minute_of(datetime(2026, 12, day, hour, minute, tzinfo=UTC))


def test_a_local_day_is_whole_hours_and_the_partial_hours_at_its_edges() -> None:
    plan = reads(NOW, KOLKATA, minutes_kept=timedelta(days=35))
    # yesterday in Kolkata: Dec 4 18:30 .. Dec 5 18:30 UTC
    assert plan.windows["day1"] == (
        Part(at(4, 18, 30), at(4, 19), hourly=False),
        Part(at(4, 19), at(5, 18), hourly=True),
        Part(at(5, 18), at(5, 18, 30), hourly=False),
    )
    # today: from Dec 5 18:30 to now's minute, the current hour from its minutes
    assert plan.windows["today"] == (
        Part(at(5, 18, 30), at(5, 19), hourly=False),
        Part(at(5, 19), at(6, 14), hourly=True),
        Part(at(6, 14), at(6, 14, 3), hourly=False),
    )
    # the last hour, 13:03 .. 14:02, and the same clock hours a week ago
    assert plan.windows["1h"] == (
        Part(at(6, 13, 3), at(6, 14), hourly=False),
        Part(at(6, 14), at(6, 14, 3), hourly=False),
    )
    assert plan.windows["same_hours"][-1] == Part(
        minute_of(datetime(2026, 11, 29, 13, tzinfo=UTC)),
        minute_of(datetime(2026, 11, 29, 15, tzinfo=UTC)),
        hourly=True,
    )
    # a zone whose midnight is on a UTC hour needs whole hours only
    utc = reads(NOW, UTC, minutes_kept=timedelta(days=35))
    assert utc.windows["day1"] == (Part(at(5, 0), at(6, 0), hourly=True),)
    # where the minutes are no longer kept, an edge hour counts whole in the day it starts in
    short = reads(NOW, KOLKATA, minutes_kept=timedelta(days=2))
    assert short.windows["day7"] == (
        Part(
            minute_of(datetime(2026, 11, 28, 19, tzinfo=UTC)),
            minute_of(datetime(2026, 11, 29, 18, tzinfo=UTC)),
            hourly=True,
        ),
        Part(
            minute_of(datetime(2026, 11, 29, 18, tzinfo=UTC)),
            minute_of(datetime(2026, 11, 29, 19, tzinfo=UTC)),
            hourly=True,
        ),
    )


def test_an_edge_hour_whose_minutes_are_gone_counts_in_the_day_it_starts() -> None:
    runs = [
        _costly(datetime(2026, 11, 28, 18, 29, tzinfo=UTC), 16.0),  # D-8
        _costly(datetime(2026, 11, 28, 18, 30, tzinfo=UTC), 8.0),  # D-7
        _costly(datetime(2026, 12, 5, 18, 0, tzinfo=UTC), 2.0),  # D-1
    ]
    f = figures_at(runs, NOW, KOLKATA, minutes_kept=timedelta(days=2))
    # the hour Nov 28 18:00 UTC starts at 23:30 local on D-8: both its runs count there
    assert f.spend_7d_daily_avg_usd == pytest.approx(2.0 / 7)
    # with the minutes kept, each run counts on its own local day
    kept = figures_at(runs, NOW, KOLKATA)
    assert kept.spend_7d_daily_avg_usd == pytest.approx(10.0 / 7)


# -- percentiles --------------------------------------------------------------------------------


def _latencies(*values: float) -> Tally:
    tally = Tally()
    tally.add_latencies(values)
    return tally


def test_percentiles_interpolate_inside_the_bucket() -> None:
    # 5 x 150 ms in (120, 160], 5 x 230 ms in (160, 240]; the maximum is 230
    tally = _latencies(*[150.0] * 5, *[230.0] * 5)
    # rank 5 is the last of the first bucket: its upper bound
    assert percentile(tally, 0.5) == pytest.approx(160)
    # rank 7: 2 of 5 into (160, 230] -> 160 + 70 x 2/5
    assert percentile(tally, 0.7) == pytest.approx(188)
    # rank 9.5 -> 160 + 70 x 4.5/5
    assert percentile(tally, 0.95) == pytest.approx(223)
    assert percentile(tally, 1.0) == pytest.approx(230)


def test_percentiles_are_never_above_the_maximum() -> None:
    # one run of 100 ms in (80, 120]: the bucket is cut at the maximum -> 80 + 20 x 1/2
    tally = _latencies(100.0)
    assert percentile(tally, 0.5) == pytest.approx(90)
    assert percentile(tally, 0.99) <= 100


def test_the_first_bucket_starts_at_zero_and_the_overflow_ends_at_the_maximum() -> None:
    assert percentile(_latencies(4.0, 8.0), 0.5) == pytest.approx(4.0)  # (0, 8] x 1/2
    over = _latencies(700_000.0)
    assert percentile(over, 0.5) == pytest.approx(650_000)  # (600 s, 700 s] x 1/2
    # a histogram sent without its maximum: the overflow bucket has no upper end to use
    sent = Tally()
    sent.add_latency_histogram([1000.0], [0, 3], total_ms=9000.0, max_ms=None)
    assert percentile(sent, 0.5) == pytest.approx(600_000)


def test_no_latencies_no_percentile() -> None:
    assert percentile(Tally(), 0.5) is None


# -- the week's chart ---------------------------------------------------------------------------


def test_the_week_is_168_hourly_points_ending_with_now() -> None:
    points = week_points(hour_slots(week_runs()), now=NOW)
    assert len(points) == 168
    assert points[-1].start == datetime(2026, 12, 6, 14, tzinfo=UTC)
    assert points[0].start == datetime(2026, 11, 29, 15, tzinfo=UTC)
    # 13:00 today: the 13:02 error and 5 of the table's runs (13:05 .. 13:55, one error)
    thirteen = points[-2]
    assert (thirteen.runs, thirteen.error_rate) == (7, pytest.approx(2 / 7))
    assert thirteen.cost_usd == pytest.approx(0.01 + 0.02 + 0.03 + 0.04 + 0.05 + 0.06)
    # Dec 1 15:00 (D-5): one background run at $0.05
    d5 = points[-120]
    assert (d5.start, d5.runs, d5.error_rate) == (datetime(2026, 12, 1, 15, tzinfo=UTC), 1, 0.0)
    assert d5.cost_usd == pytest.approx(0.05)
    empty = week_points([], now=NOW)
    assert all(p.runs == 0 and p.error_rate is None and p.cost_usd == 0.0 for p in empty)


# -- rendering of single numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"), [(820.0, "820 ms"), (999.6, "1.0 s"), (2900.0, "2.9 s"), (None, "n/a")]
)
def test_latency_text(ms: float | None, text: str) -> None:
    assert latency_text(ms) == text


@pytest.mark.parametrize(
    ("usd", "text"),
    [(0.012, "$0.012"), (0.0004, "$0.00040"), (0.5, "$0.500"), (41.2, "$41.20"), (0.0, "$0.00")],
)
def test_cost_text(usd: float, text: str) -> None:
    assert cost_text(usd) == text


@pytest.mark.parametrize(
    "zone",
    ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin"],
)
@pytest.mark.parametrize(
    "now",
    [
        NOW,
        datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC),  # Berlin's clocks went back at 01:00 UTC
        datetime(2026, 3, 29, 22, 0, tzinfo=UTC),  # the night after Berlin's clocks went forward
        datetime(2026, 12, 6, 18, 29, tzinfo=UTC),  # a minute before Kolkata's midnight
        datetime(2026, 12, 6, 18, 59, tzinfo=UTC),
    ],
)
def test_each_window_is_cut_into_parts_that_tile_it_exactly(now: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    plan = reads(now, tz, minutes_kept=timedelta(days=35))
    end = minute_of(now) + 1
    today = now.astimezone(tz).date()
    midnights = [local_midnight(today - timedelta(days=k), tz) for k in range(8)]
    expected = {
        "10m": (end - 10, end),
        "30m": (end - 30, end),
        "1h": (end - 60, end),
        "2h": (end - 120, end),
        "today": (midnights[0], end),
        **{f"day{k}": (midnights[k], midnights[k - 1]) for k in range(1, 8)},
    }
    for name, (since, until) in expected.items():
        parts = plan.windows[name]
        assert parts[0].since == since and parts[-1].until == until, name
        for before, after in pairwise(parts):
            assert before.until == after.since, name
        for part in parts:
            assert part.since < part.until
            if part.hourly:
                assert part.since % 60 == 0 and part.until % 60 == 0
                assert part.until <= hour_of(minute_of(now))  # never the current hour's row
            else:
                assert hour_of(part.since) == hour_of(part.until - 1)  # within one hour


# -- against counting the runs one by one -------------------------------------------------------

_ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin"]
_START = datetime(2026, 10, 20, tzinfo=UTC)  # Berlin's clocks go back on Oct 25


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[list[Run], datetime, str]:
    now = _START + timedelta(minutes=draw(st.integers(9 * _DAY_MINUTES, 11 * _DAY_MINUTES)))
    offsets = draw(st.lists(st.integers(0, 10 * _DAY_MINUTES * 60), min_size=1, max_size=40))
    runs = [
        Run(
            WORKFLOW,
            f"r{index}",
            now - timedelta(seconds=offset),
            status=draw(st.sampled_from(list(RunStatus))),
            cost_usd=draw(st.sampled_from([0.0, 0.01, 0.25])),
        )
        for index, offset in enumerate(offsets)
    ]
    return runs, now, draw(st.sampled_from(_ZONES))


_DAY_MINUTES = 1440


@settings(max_examples=150, deadline=None, database=None)
@given(_scenario())
def test_the_figures_agree_with_counting_each_run(
    scenario: tuple[list[Run], datetime, str],
) -> None:
    runs, now, zone_name = scenario
    zone = ZoneInfo(zone_name)
    f = figures_at(runs, now, zone)
    end = minute_of(now) + 1

    def within(since: int, until: int) -> list[Run]:
        return [run for run in runs if since <= minute_of(run.at) < until]

    def error_rate(found: list[Run]) -> float | None:
        failed = [r for r in found if r.status in (RunStatus.ERROR, RunStatus.TIMEOUT)]
        return len(failed) / len(found) if found else None

    assert f.runs_last_hour == len(within(end - 60, end))
    assert f.error_rate_10m == pytest.approx(error_rate(within(end - 10, end)))
    assert f.error_rate_2h == pytest.approx(error_rate(within(end - 120, end)))
    today = now.astimezone(zone).date()
    midnights = [local_midnight(today - timedelta(days=k), zone) for k in range(8)]
    assert f.error_rate_today == pytest.approx(error_rate(within(midnights[0], end)))
    assert f.spend_today_usd == pytest.approx(
        sum(r.cost_usd or 0.0 for r in within(midnights[0], end))
    )
    first_hour = hour_of(min(minute_of(r.at) for r in runs))
    assert f.history_days == (minute_of(now) - first_hour) // _DAY_MINUTES
    if f.history_days is not None and f.history_days >= 7:
        week = within(midnights[7], midnights[0])
        assert f.spend_7d_daily_avg_usd == pytest.approx(sum(r.cost_usd or 0.0 for r in week) / 7)
    else:
        assert f.spend_7d_daily_avg_usd is None
