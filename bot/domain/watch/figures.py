"""The figures an on-call engineer reads about a watched workflow, from its stored history.

Everything here is computed from tallies (`Slot`s) and `now`, never from single runs: the last
two hours minute by minute, the previous eight days hour by hour, and, where the team's midnight
is not on a UTC hour boundary (Asia/Kolkata's is at 18:30 UTC), the hours holding each midnight
minute by minute, so "today" and each past local day start exactly at midnight.

A figure is None where there is no data for it (no runs, no latencies, no cost reported, not
enough history for a baseline), never a made-up number. Rates are fractions 0..1.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from bot.domain.watch.history import (
    LATENCY_BOUNDS_MS,
    Slot,
    Tally,
    Version,
    VersionKind,
    hour_of,
    minute_of,
    minute_start,
)

__all__ = [
    "BASELINE_DAYS",
    "HourPoint",
    "Reads",
    "WatchFigures",
    "WatchHistory",
    "compute_figures",
    "local_midnight",
    "percentile",
    "reads",
    "week_points",
]

# a baseline needs this many days of history
BASELINE_DAYS = 7
_DAY = 1440
_WEEK_HOURS = 7 * 24


def local_midnight(day: date, zone: tzinfo) -> int:
    """Return the minute (since the epoch, UTC) at which a local day starts in `zone`."""
    return minute_of(datetime.combine(day, time(0), tzinfo=zone))


def _today(now: datetime, zone: tzinfo) -> date:
    return now.astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class Reads:
    """What the figures at `now` read: minute slots of some hours, hourly slots of a range.

    `minute_ranges` are [since, until) minute ranges, each a run of whole hours; `hours_since`
    to `hours_until` is the [since, until) range of hourly slots.
    """

    minute_ranges: tuple[tuple[int, int], ...]
    hours_since: int
    hours_until: int

    @property
    def minute_hours(self) -> frozenset[int]:
        """The first minutes of the hours read minute by minute."""
        return frozenset(
            hour for since, until in self.minute_ranges for hour in range(since, until, 60)
        )


def reads(now: datetime, zone: tzinfo, *, minutes_kept: timedelta) -> Reads:
    """Return the ranges of history the figures at `now` need (and the week's chart too).

    Minutes: the hours the last two hours touch, and the hours holding each of the last eight
    local midnights that fall inside a UTC hour (while minutes are still kept). Hours: from the
    earlier of eight local days ago and the same clock hour seven days ago, to the end of now's
    hour.
    """
    now_minute = minute_of(now)
    current = hour_of(now_minute)
    hours = set(range(hour_of(now_minute - 119), current + 60, 60))
    kept_since = now_minute - int(minutes_kept.total_seconds() // 60)
    today = _today(now, zone)
    midnights = [local_midnight(today - timedelta(days=k), zone) for k in range(BASELINE_DAYS + 1)]
    for midnight in midnights:
        if midnight % 60 and hour_of(midnight) >= hour_of(kept_since):
            hours.add(hour_of(midnight))
    ranges: list[tuple[int, int]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + 60)
        else:
            ranges.append((hour, hour + 60))
    since = min(
        hour_of(midnights[-1]),
        hour_of(now_minute - 59) - BASELINE_DAYS * _DAY,
        current - (_WEEK_HOURS - 1) * 60,
    )
    return Reads(tuple(ranges), since, current + 60)


@dataclass(frozen=True)
class WatchHistory:
    """What the store holds of one workflow for the figures at one instant.

    `minutes` are minute slots of the hours in `minute_hours` (read whole), `hours` the hourly
    slots; `first_minute` is the first minute of its first hour of history (None: none at all);
    `last_at_ms` the latest run the store knows of, when known beyond the slots.
    """

    workflow: str
    minutes: Sequence[Slot] = ()
    hours: Sequence[Slot] = ()
    minute_hours: frozenset[int] = frozenset()
    versions: Sequence[Version] = ()
    first_minute: int | None = None
    last_at_ms: int | None = None
    _by_minute: dict[int, Tally] = field(init=False, repr=False, compare=False)
    _by_hour: dict[int, Tally] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_minute: dict[int, Tally] = {}
        for slot in self.minutes:
            _add(by_minute, slot.start, slot.tally)
        by_hour: dict[int, Tally] = {}
        for slot in self.hours:
            _add(by_hour, slot.start, slot.tally)
        object.__setattr__(self, "_by_minute", by_minute)
        object.__setattr__(self, "_by_hour", by_hour)

    def span(self, since: int, until: int) -> Tally:
        """Return the tally of minutes `since` <= minute < `until`.

        An hour read minute by minute counts exactly the minutes in range; any other hour counts
        whole when it starts in range (an hour at the edge of a range whose minutes are no
        longer kept counts in the range it starts in).
        """
        total = Tally()
        for hour in range(hour_of(since), until, 60):
            if hour in self.minute_hours:
                for minute in range(max(since, hour), min(until, hour + 60)):
                    tally = self._by_minute.get(minute)
                    if tally is not None:
                        total.merge(tally)
            elif hour >= since:
                tally = self._by_hour.get(hour)
                if tally is not None:
                    total.merge(tally)
        return total

    def hour(self, start: int) -> Tally | None:
        """Return the hourly slot starting at minute `start`, if any."""
        return self._by_hour.get(start)

    def latest_at_ms(self) -> int | None:
        """Return the latest run's time known from the slots or the store."""
        found = [self.last_at_ms] if self.last_at_ms is not None else []
        found.extend(
            slot.tally.last_at_ms
            for slot in (*self.minutes, *self.hours)
            if slot.tally.last_at_ms is not None
        )
        return max(found) if found else None


def _add(into: dict[int, Tally], start: int, tally: Tally) -> None:
    mine = into.get(start)
    if mine is None:
        into[start] = mine = Tally()
    mine.merge(tally)


@dataclass(frozen=True, slots=True)
class WatchFigures:
    """One workflow's figures at one instant; None where there is no data."""

    workflow: str
    runs_last_hour: int | None = None
    error_rate_10m: float | None = None
    error_rate_2h: float | None = None
    error_rate_today: float | None = None
    latency_p50_ms_1h: float | None = None
    latency_p95_ms_1h: float | None = None
    latency_max_ms_1h: float | None = None
    # the last three known latencies, oldest first
    last_latencies_ms: tuple[float, ...] = ()
    tokens_per_run_1h: float | None = None
    tokens_per_run_baseline: float | None = None
    cost_per_run_1h: float | None = None
    cost_per_run_baseline: float | None = None
    spend_today_usd: float | None = None
    spend_7d_daily_avg_usd: float | None = None
    refusal_rate_30m: float | None = None
    confidence_mean_1h: float | None = None
    handoff_rate_1h: float | None = None
    model: str | None = None
    prompt_version: str | None = None
    last_run_at: datetime | None = None
    history_days: int | None = None
    baseline_note: str | None = None

    @property
    def seen(self) -> bool:
        """Whether the workflow has any history at all."""
        return self.history_days is not None or self.last_run_at is not None

    def as_json(self) -> dict[str, Any]:
        """Return the figures as a JSON object (times in ISO 8601, UTC)."""
        values: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            elif isinstance(value, tuple):
                value = list(value)
            values[name] = value
        return values


@dataclass(frozen=True, slots=True)
class HourPoint:
    """One hour of a workflow's week, for the chart: runs, error rate (None: no runs), cost."""

    start: datetime
    runs: int
    error_rate: float | None
    cost_usd: float


def percentile(tally: Tally, q: float) -> float | None:
    """Return the `q` quantile (0..1) of a tally's latency histogram, in ms; None without any.

    The rank is q x count; inside the bucket that holds it the value is interpolated linearly
    between the bucket's bounds (the first bucket starts at 0, the overflow bucket ends at the
    maximum), and it is never above the maximum seen.
    """
    if tally.latency_count <= 0:
        return None
    rank = q * tally.latency_count
    highest = tally.latency_max_ms
    below = 0
    for index, count in enumerate(tally.latency_buckets):
        if count <= 0:
            continue
        if below + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
            if index < len(LATENCY_BOUNDS_MS):
                upper = LATENCY_BOUNDS_MS[index]
            else:
                upper = highest if highest is not None else lower
            if highest is not None:
                upper = min(upper, highest)
                lower = min(lower, highest)
            value = lower + (upper - lower) * max(rank - below, 0.0) / count
            return min(value, highest) if highest is not None else value
        below += count
    return highest


def _rate(part: int, runs: int) -> float | None:
    return part / runs if runs > 0 else None


def _tokens_per_run(tally: Tally) -> float | None:
    tokens = tally.tokens_in + tally.tokens_out
    return tokens / tally.runs if tally.runs > 0 and tokens > 0 else None


def _cost_per_run(tally: Tally) -> float | None:
    return tally.cost_usd / tally.runs if tally.runs > 0 and tally.cost_usd > 0 else None


def _latest(versions: Iterable[Version], kind: VersionKind) -> str | None:
    found = [version for version in versions if version.kind is kind]
    if not found:
        return None
    return max(found, key=lambda version: (version.last_seen, version.first_seen)).value


def compute_figures(
    history: WatchHistory,
    *,
    now: datetime,
    zone: tzinfo,
    pinned_cost_per_run: float | None = None,
) -> WatchFigures:
    """Return a workflow's figures at `now` ("today" starts at local midnight in `zone`).

    The last hour is the 60 minutes ending with now's minute (inclusive), so are the 10 minutes,
    30 minutes and 2 hours. Baselines need BASELINE_DAYS of history (the first hour at least
    that long before now); a pinned cost per run is the baseline with no history at all.
    """
    now_minute = minute_of(now)
    end = now_minute + 1

    def last(minutes: int) -> Tally:
        return history.span(end - minutes, end)

    hour, ten, half, two = last(60), last(10), last(30), last(120)
    today = _today(now, zone)
    midnight = local_midnight(today, zone)
    today_tally = history.span(midnight, end)
    latest_ms = history.latest_at_ms()
    seen = history.first_minute is not None or latest_ms is not None
    history_days = (
        max(now_minute - history.first_minute, 0) // _DAY
        if history.first_minute is not None
        else None
    )
    enough = history_days is not None and history_days >= BASELINE_DAYS

    tokens_baseline: float | None = None
    spend_average: float | None = None
    cost_baseline: float | None = pinned_cost_per_run
    if enough:
        # the clock hours the last hour touches, on each of the previous days
        touched = sorted({hour_of(end - 60), hour_of(now_minute)})
        same_hours = Tally()
        for days_back in range(1, BASELINE_DAYS + 1):
            for start in touched:
                tally = history.hour(start - days_back * _DAY)
                if tally is not None:
                    same_hours.merge(tally)
        tokens_baseline = _tokens_per_run(same_hours)
        days = [
            history.span(
                local_midnight(today - timedelta(days=k), zone),
                local_midnight(today - timedelta(days=k - 1), zone),
            )
            for k in range(1, BASELINE_DAYS + 1)
        ]
        spend_average = sum(day.cost_usd for day in days) / BASELINE_DAYS
        if cost_baseline is None:
            per_day = [value for value in map(_cost_per_run, days) if value is not None]
            cost_baseline = statistics.median(per_day) if per_day else None
    if history_days is None:
        note: str | None = "no history yet"
    elif not enough:
        note = f"not enough history ({history_days} day{'' if history_days == 1 else 's'})"
    else:
        note = None
    recent = [latency for _at, latency in two.recent]
    return WatchFigures(
        workflow=history.workflow,
        runs_last_hour=hour.runs if seen else None,
        error_rate_10m=_rate(ten.failed, ten.runs),
        error_rate_2h=_rate(two.failed, two.runs),
        error_rate_today=_rate(today_tally.failed, today_tally.runs),
        latency_p50_ms_1h=percentile(hour, 0.5),
        latency_p95_ms_1h=percentile(hour, 0.95),
        latency_max_ms_1h=hour.latency_max_ms if hour.latency_count > 0 else None,
        last_latencies_ms=tuple(recent[-3:]),
        tokens_per_run_1h=_tokens_per_run(hour),
        tokens_per_run_baseline=tokens_baseline,
        cost_per_run_1h=_cost_per_run(hour),
        cost_per_run_baseline=cost_baseline,
        spend_today_usd=today_tally.cost_usd if seen else None,
        spend_7d_daily_avg_usd=spend_average,
        refusal_rate_30m=_rate(half.refusals, half.runs),
        confidence_mean_1h=(
            hour.confidence_sum / hour.confidence_count if hour.confidence_count > 0 else None
        ),
        handoff_rate_1h=_rate(hour.handoffs, hour.runs),
        model=_latest(history.versions, VersionKind.MODEL),
        prompt_version=_latest(history.versions, VersionKind.PROMPT),
        last_run_at=(
            datetime.fromtimestamp(latest_ms / 1000, tz=UTC) if latest_ms is not None else None
        ),
        history_days=history_days,
        baseline_note=note,
    )


def week_points(hours: Iterable[Slot], *, now: datetime) -> list[HourPoint]:
    """Return the last seven days as hourly points, oldest first, ending with now's hour."""
    by_hour: dict[int, Tally] = {}
    for slot in hours:
        _add(by_hour, slot.start, slot.tally)
    current = hour_of(minute_of(now))
    points = []
    for start in range(current - (_WEEK_HOURS - 1) * 60, current + 60, 60):
        tally = by_hour.get(start) or Tally()
        points.append(
            HourPoint(
                start=minute_start(start),
                runs=tally.runs,
                error_rate=_rate(tally.failed, tally.runs),
                cost_usd=tally.cost_usd,
            )
        )
    return points
