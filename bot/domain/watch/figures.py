"""The figures an on-call engineer reads about a watched workflow, from its stored history.

Everything here is computed from tallies and `now`, never from single runs. `reads` says which
spans of the history the figures need: each window (the last 10, 30, 60 and 120 minutes, today,
each of the previous seven local days, the same clock hours on each of them) is cut into
`Part`s: whole hours from the hourly history, and the partial hours at its ends from the minute
history, so "today" starts exactly at local midnight even where that is not on a UTC hour
(Asia/Kolkata's is at 18:30 UTC). The store adds up each part; `compute_figures` adds the parts.

A figure is None where there is no data for it (no runs, no latencies, no cost reported, not
enough history for a baseline), never a made-up number. Rates are fractions 0..1.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, NamedTuple

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
    "Part",
    "Reads",
    "RuleState",
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


class Part(NamedTuple):
    """A span the store adds up: minutes (or hours, by their first minute) since <= m < until."""

    since: int
    until: int
    hourly: bool


def _parts(since: int, until: int, *, current_hour: int, kept_since: int) -> tuple[Part, ...]:
    """Cut minutes [since, until) into whole hours and the partial hours at the ends.

    The current hour always comes from the minutes (its hourly tally may hold runs sent from a
    few minutes ahead). A partial hour whose minutes are no longer kept counts whole in the
    span it starts in.
    """
    if since >= until:
        return ()
    head_end = min(-(-since // 60) * 60, until)
    tail_start = max(min(hour_of(until), current_hour), head_end)
    parts = []
    if since < head_end and since >= kept_since:
        parts.append(Part(since, head_end, hourly=False))
    if head_end < tail_start:
        parts.append(Part(head_end, tail_start, hourly=True))
    if tail_start < until:
        if tail_start >= kept_since or tail_start >= current_hour:
            parts.append(Part(tail_start, until, hourly=False))
        else:
            parts.append(Part(tail_start, tail_start + 60, hourly=True))
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class Reads:
    """What the figures at one instant read: the parts of each window, and where recent
    latencies are looked for."""

    now_minute: int
    # window name -> its parts: "10m", "30m", "1h", "2h", "today", "day1".."day7" (local days
    # before today), "same_hours" (the clock hours the last hour touches, on each of those days)
    windows: Mapping[str, tuple[Part, ...]]
    recent_since: int
    recent_until: int

    @property
    def parts(self) -> frozenset[Part]:
        """Every distinct part, for the store to add up."""
        return frozenset(part for parts in self.windows.values() for part in parts)


def reads(now: datetime, zone: tzinfo, *, minutes_kept: timedelta) -> Reads:
    """Return the spans of history the figures at `now` need (today starts at midnight in
    `zone`; minutes older than `minutes_kept` are taken to be gone)."""
    now_minute = minute_of(now)
    end = now_minute + 1
    current = hour_of(now_minute)
    kept_since = now_minute - int(minutes_kept.total_seconds() // 60)

    def cut(since: int, until: int) -> tuple[Part, ...]:
        return _parts(since, until, current_hour=current, kept_since=kept_since)

    today = _today(now, zone)
    midnights = [local_midnight(today - timedelta(days=k), zone) for k in range(BASELINE_DAYS + 1)]
    windows: dict[str, tuple[Part, ...]] = {
        "10m": cut(end - 10, end),
        "30m": cut(end - 30, end),
        "1h": cut(end - 60, end),
        "2h": cut(end - 120, end),
        "today": cut(midnights[0], end),
    }
    for k in range(1, BASELINE_DAYS + 1):
        windows[f"day{k}"] = cut(midnights[k], midnights[k - 1])
    first, last = hour_of(end - 60), hour_of(now_minute)
    windows["same_hours"] = tuple(
        Part(first - k * _DAY, last + 60 - k * _DAY, hourly=True)
        for k in range(1, BASELINE_DAYS + 1)
    )
    return Reads(now_minute, windows, recent_since=end - 120, recent_until=end)


@dataclass(frozen=True)
class WatchHistory:
    """What the store holds of one workflow for the figures at one instant.

    `sums` are the totals of the parts `reads` asked for (a part with nothing in it may be
    missing); `recent` the latest latencies kept in `Reads.recent_since`..`recent_until`, as
    (epoch ms, latency ms) in time order; `first_minute` the first minute of its first hour of
    history (None: none at all); `last_at_ms` its latest run.
    """

    workflow: str
    sums: Mapping[Part, Tally] = field(default_factory=dict)
    recent: Sequence[tuple[int, float]] = ()
    versions: Sequence[Version] = ()
    first_minute: int | None = None
    last_at_ms: int | None = None

    def total(self, parts: Iterable[Part]) -> Tally:
        """Return the tally of some parts added up."""
        total = Tally()
        for part in parts:
            tally = self.sums.get(part)
            if tally is not None:
                total.merge(tally)
        return total


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where one watched severity rule of a workflow stands (`state`: a rules Holding value)."""

    rule: str
    state: str
    severity: str
    text: str
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the state as a JSON object."""
        since = None if self.since is None else _iso(self.since)
        return {
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "text": self.text,
            "since": since,
        }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    # the watched severity rules, as the scheduler last judges them
    rules: tuple[RuleState, ...] = ()

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
                value = _iso(value)
            elif isinstance(value, tuple):
                value = [v.as_json() if isinstance(v, RuleState) else v for v in value]
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
    plan: Reads,
    *,
    zone: tzinfo,
    pinned_cost_per_run: float | None = None,
) -> WatchFigures:
    """Return a workflow's figures at the instant `plan` was made for (see `reads`).

    The last hour is the 60 minutes ending with now's minute (inclusive), so are the 10 minutes,
    30 minutes and 2 hours. Baselines need BASELINE_DAYS of history (the first hour at least
    that long before now); a pinned cost per run is the baseline with no history at all.
    """
    windows = plan.windows
    hour, ten, half, two, today = (
        history.total(windows[name]) for name in ("1h", "10m", "30m", "2h", "today")
    )
    seen = history.first_minute is not None or history.last_at_ms is not None
    history_days = (
        max(plan.now_minute - history.first_minute, 0) // _DAY
        if history.first_minute is not None
        else None
    )
    enough = history_days is not None and history_days >= BASELINE_DAYS

    tokens_baseline: float | None = None
    spend_average: float | None = None
    cost_baseline: float | None = pinned_cost_per_run
    if enough:
        tokens_baseline = _tokens_per_run(history.total(windows["same_hours"]))
        days = [history.total(windows[f"day{k}"]) for k in range(1, BASELINE_DAYS + 1)]
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
    latest = history.last_at_ms
    return WatchFigures(
        workflow=history.workflow,
        runs_last_hour=hour.runs if seen else None,
        error_rate_10m=_rate(ten.failed, ten.runs),
        error_rate_2h=_rate(two.failed, two.runs),
        error_rate_today=_rate(today.failed, today.runs),
        latency_p50_ms_1h=percentile(hour, 0.5),
        latency_p95_ms_1h=percentile(hour, 0.95),
        latency_max_ms_1h=hour.latency_max_ms if hour.latency_count > 0 else None,
        last_latencies_ms=tuple(latency for _at, latency in history.recent[-3:]),
        tokens_per_run_1h=_tokens_per_run(hour),
        tokens_per_run_baseline=tokens_baseline,
        cost_per_run_1h=_cost_per_run(hour),
        cost_per_run_baseline=cost_baseline,
        spend_today_usd=today.cost_usd if seen else None,
        spend_7d_daily_avg_usd=spend_average,
        refusal_rate_30m=_rate(half.refusals, half.runs),
        confidence_mean_1h=(
            hour.confidence_sum / hour.confidence_count if hour.confidence_count > 0 else None
        ),
        handoff_rate_1h=_rate(hour.handoffs, hour.runs),
        model=_latest(history.versions, VersionKind.MODEL),
        prompt_version=_latest(history.versions, VersionKind.PROMPT),
        last_run_at=(datetime.fromtimestamp(latest / 1000, tz=UTC) if latest is not None else None),
        history_days=history_days,
        baseline_note=note,
    )


def week_points(hours: Iterable[Slot], *, now: datetime) -> list[HourPoint]:
    """Return the last seven days as hourly points, oldest first, ending with now's hour."""
    by_hour: dict[int, Tally] = {}
    for slot in hours:
        by_hour.setdefault(slot.start, Tally()).merge(slot.tally)
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
