"""The runbook's severity rules judged on the bot's own history of a workflow, on its own clock.

`evaluate` takes what the store holds of one workflow (minute tallies of the last hours, hour
tallies of the last days, the latest latencies, the change log) and `now`, and returns one
`Finding` per rule in `RULE_IDS`: whether its condition holds now, since when, when it last
held, and a reason that quotes the computed figures and their window.

Conventions shared by every rule:

- Time is counted in whole minutes since the epoch (`minute_of`); "the last 10 minutes" are
  the ten minutes ending with now's minute, now's minute counted whole (as the `watch` figures
  do). A window rule (`error-rate*`, `refusals`, `tokens-per-run`, `cost-per-run`) is judged as
  of every minute the minute history covers, with prefix sums, so `since` (the start of the
  unbroken run of minutes at which it held, up to now) and `last_held` (the end of the latest
  minute at which it held, or `now`) come from the history and survive a restart.
- A rate needs `min_runs` runs in its window, else the rule is TOO_FEW_RUNS.
- Baseline rules (tokens, cost unless pinned, spend, deviation) need `baseline_days` days of
  history (from `first_minute` to now), else NO_BASELINE: "not enough history (n days)".
- Hourly history is in UTC hours. Where a window starts or ends inside an hour that the minute
  history no longer covers, that hour counts whole in the window it starts in.
- Times in texts are local to the business hours' time zone.
"""

from __future__ import annotations

import bisect
import functools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import accumulate
from typing import NamedTuple

from bot.domain.calendar import BusinessHours
from bot.domain.severity import Severity, SeverityRules
from bot.domain.watch.figures import local_midnight, percentile
from bot.domain.watch.history import Change, Tally, hour_of, minute_of, minute_start

__all__ = [
    "DEVIATION_METRICS",
    "RULE_IDS",
    "Finding",
    "Holding",
    "WatchedHistory",
    "evaluate",
    "hours_needed",
    "minutes_needed",
]

DEVIATION_METRICS: tuple[str, ...] = (
    "error-rate",
    "p95-latency",
    "refusal-rate",
    "confidence",
    "handoff-rate",
    "runs-per-hour",
)
RULE_IDS: tuple[str, ...] = (
    "error-rate",
    "error-rate-sustained",
    "error-rate-critical",
    "latency",
    "tokens-per-run",
    "cost-per-run",
    "spend-today",
    "spend-24h",
    *(f"deviation-{metric}" for metric in DEVIATION_METRICS),
    "refusals",
    "silence",
)

_DAY = 1440
# the minute history is read back at most this far (a window rule's `since` cannot be older)
_MINUTES_BACK = 2 * _DAY
# a change this long before a condition began is named in its reason
_CHANGE_WINDOW = timedelta(hours=24)
# the current, partial hour's runs/h is judged once this much of it has passed
_PARTIAL_HOUR_MINUTES = 15


class Holding(StrEnum):
    """Whether a rule's condition holds now."""

    FIRING = "firing"
    CLEAR = "clear"
    NO_BASELINE = "no-baseline"
    TOO_FEW_RUNS = "too-few-runs"
    OFF = "off"


@dataclass(frozen=True)
class WatchedHistory:
    """What the store holds of one workflow for judging its rules at one instant.

    `minutes`: minute (`minute_of`) -> tally, covering at least `minutes_needed` (3 hours with
    the default thresholds) up to now (a minute missing inside the covered span had no runs);
    `hours`: first minute of an hour -> tally, covering at least `hours_needed` (9 days)
    including the current partial hour; `recent`: the
    latest (epoch ms, latency ms) in time order; `first_minute`: the earliest minute with
    history; `last_run_ms`: the latest run; `changes`: model and prompt changes of at least the
    last 24 hours.
    """

    workflow: str
    minutes: Mapping[int, Tally]
    hours: Mapping[int, Tally]
    recent: Sequence[tuple[int, float]]
    first_minute: int | None
    last_run_ms: int | None
    changes: Sequence[Change] = ()


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one workflow at one instant.

    `severity` is what the rule gives when FIRING; `since` when the condition began (FIRING
    only); `last_held` the latest instant <= now at which it held (None: not in the history
    looked at); `figures` the numbers the text quotes.
    """

    workflow: str
    rule: str
    title: str
    severity: Severity
    holding: Holding
    text: str
    since: datetime | None = None
    last_held: datetime | None = None
    figures: Mapping[str, float] = field(default_factory=dict)


# -- formatting ----------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _pct_limit(value: float) -> str:
    return f"{value * 100:g} %"


def _count(value: int) -> str:
    return f"{value:,}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4g}"


def _ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _span(minutes: float) -> str:
    """Say a duration in words, e.g. "2 h 10 min", "40 min", "24 h", "3 days 2 h"."""
    total = max(round(minutes), 0)
    days, rest = divmod(total, _DAY) if total >= 2 * _DAY else (0, total)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'' if days == 1 else 's'}")
    if hours:
        parts.append(f"{hours} h")
    if mins and not days:
        parts.append(f"{mins} min")
    return " ".join(parts) or "0 min"


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"


class _Clock(NamedTuple):
    now: datetime
    now_minute: int
    hours: BusinessHours

    def at(self, when: datetime | int) -> str:
        """Say a local time, with the weekday when it is not today."""
        instant = minute_start(when) if isinstance(when, int) else when
        zone = self.hours.zone
        local = instant.astimezone(zone)
        if local.date() == self.now.astimezone(zone).date():
            return local.strftime("%H:%M")
        return local.strftime("%a %H:%M")


# -- sums of the minute history ------------------------------------------------------------------


class _Sum(NamedTuple):
    runs: int
    failed: int
    refusals: int
    tokens: int
    cost: float


_ZERO = _Sum(0, 0, 0, 0, 0.0)


def _plus(a: _Sum, b: _Sum) -> _Sum:
    return _Sum(
        a.runs + b.runs,
        a.failed + b.failed,
        a.refusals + b.refusals,
        a.tokens + b.tokens,
        a.cost + b.cost,
    )


def _of(tally: Tally | None) -> _Sum:
    if tally is None:
        return _ZERO
    return _Sum(
        tally.runs, tally.failed, tally.refusals, tally.tokens_in + tally.tokens_out, tally.cost_usd
    )


class _Minutes:
    """Prefix sums of the minute tallies over minutes `lo`..`now` (both included)."""

    def __init__(self, minutes: Mapping[int, Tally], now_minute: int) -> None:
        lo = now_minute - 179
        earliest = min((m for m in minutes if m >= now_minute - _MINUTES_BACK), default=lo)
        self.lo = min(lo, earliest)
        self.now = now_minute
        n = now_minute - self.lo + 1
        runs, failed, refusals, tokens = [0] * n, [0] * n, [0] * n, [0] * n
        cost = [0.0] * n
        for minute, tally in minutes.items():
            i = minute - self.lo
            if 0 <= i < n:
                runs[i] = tally.runs
                failed[i] = tally.failed
                refusals[i] = tally.refusals
                tokens[i] = tally.tokens_in + tally.tokens_out
                cost[i] = tally.cost_usd
        self._runs = list(accumulate(runs, initial=0))
        self._failed = list(accumulate(failed, initial=0))
        self._refusals = list(accumulate(refusals, initial=0))
        self._tokens = list(accumulate(tokens, initial=0))
        self._cost = list(accumulate(cost, initial=0.0))
        self._prefix: dict[str, Sequence[float]] = {
            "runs": self._runs,
            "failed": self._failed,
            "refusals": self._refusals,
            "tokens": self._tokens,
            "cost": self._cost,
        }

    def covers(self, since: int) -> bool:
        return since >= self.lo

    def sum(self, since: int, until: int) -> _Sum:
        """Return the sums of minutes since <= m <= until (clipped to what is covered)."""
        a = max(since - self.lo, 0)
        b = min(until - self.lo + 1, self.now - self.lo + 1)
        if b <= a:
            return _ZERO
        return _Sum(
            self._runs[b] - self._runs[a],
            self._failed[b] - self._failed[a],
            self._refusals[b] - self._refusals[a],
            self._tokens[b] - self._tokens[a],
            self._cost[b] - self._cost[a],
        )

    def first(self, width: int) -> int:
        """The first minute whose `width`-minute window the minutes cover."""
        return self.lo + width - 1

    def windows(self, width: int, name: str) -> list[float]:
        """The sums of one field (a `_Sum` name) over the `width`-minute window ending at each
        minute from `first(width)` to now."""
        prefix = self._prefix[name]
        return [b - a for a, b in zip(prefix, prefix[width:], strict=False)]

    def rates(
        self, width: int, name: str, *, need: int, limit: float, at_least: bool = False
    ) -> list[bool]:
        """Whether field `name` per run over the `width`-minute window ending at each minute
        from `first(width)` was above (or at least) `limit`, with at least `need` runs."""
        runs = self.windows(width, "runs")
        part = self.windows(width, name)
        need = max(need, 1)
        if at_least:
            return [r >= need and p / r >= limit for r, p in zip(runs, part, strict=True)]
        return [r >= need and p / r > limit for r, p in zip(runs, part, strict=True)]


def _streak(first: int, held: Sequence[bool]) -> tuple[int | None, int | None]:
    """Return the first minute of the unbroken run of held minutes ending now, and the latest
    minute at which it held (None, None: never)."""
    latest = next((i for i in range(len(held) - 1, -1, -1) if held[i]), None)
    if latest is None:
        return None, None
    if latest != len(held) - 1:
        return None, first + latest
    start = latest
    while start > 0 and held[start - 1]:
        start -= 1
    return first + start, first + latest


# -- the evaluation context ------------------------------------------------------------------------


@dataclass
class _Ctx:
    history: WatchedHistory
    rules: SeverityRules
    clock: _Clock
    minutes: _Minutes
    customer_facing: bool
    history_days: int
    # the daily spend averages worked out so far, by the day they are the baseline of
    averages: dict[date, float] = field(default_factory=dict)

    @property
    def workflow(self) -> str:
        return self.history.workflow

    @property
    def now(self) -> datetime:
        return self.clock.now

    @property
    def now_minute(self) -> int:
        return self.clock.now_minute

    def enough_history(self) -> bool:
        return self.history_days >= self.rules.baseline_days

    def last_held(self, minute: int | None) -> datetime | None:
        """The end of a minute as of which a window rule held (now for now's minute)."""
        if minute is None:
            return None
        return self.now if minute >= self.now_minute else minute_start(minute + 1)

    def span(self, since: int, until: int) -> _Sum:
        """Return the sums of minutes since <= m < until, from minutes where covered, else
        from hours (an hour counts whole in the span it starts in)."""
        total = _ZERO
        hour = hour_of(since)
        while hour < until:
            a, b = max(since, hour), min(until, hour + 60)
            if self.minutes.covers(a):
                total = _plus(total, self.minutes.sum(a, b - 1))
            elif hour >= since:
                total = _plus(total, _of(self.history.hours.get(hour)))
            hour += 60
        return total

    def change_note(self, since: datetime | None) -> tuple[str, Mapping[str, float]]:
        """Name the latest change within 24 h before a condition began."""
        if since is None:
            return "", {}
        before = [
            c for c in self.history.changes if c.at <= since and since - c.at <= _CHANGE_WINDOW
        ]
        if not before:
            return "", {}
        change = max(before, key=lambda c: c.at)
        gap = (since - change.at).total_seconds() / 60
        return (
            f"; began {_span(gap)} after {change.describe()}",
            {"minutes_after_change": round(gap)},
        )

    def finding(
        self,
        rule: str,
        title: str,
        severity: Severity,
        holding: Holding,
        text: str,
        *,
        since: datetime | None = None,
        last_held: datetime | None = None,
        figures: Mapping[str, float] | None = None,
    ) -> Finding:
        values = dict(figures or {})
        if holding is Holding.FIRING:
            note, extra = self.change_note(since)
            text += note
            values.update(extra)
        else:
            since = None
        return Finding(
            workflow=self.workflow,
            rule=rule,
            title=f"{self.workflow}: {title}",
            severity=severity,
            holding=holding,
            text=text,
            since=since,
            last_held=last_held,
            figures=values,
        )

    def no_history(self, rule: str, title: str, severity: Severity) -> Finding:
        return self.finding(
            rule,
            title,
            severity,
            Holding.NO_BASELINE,
            f"not enough history ({_days(self.history_days)})",
            figures={"history_days": self.history_days},
        )


# -- error rate ----------------------------------------------------------------------------------


def _window_rule(
    ctx: _Ctx,
    *,
    rule: str,
    title: str,
    severity: Severity,
    width: int,
    name: str,
    limit: float,
    at_least: bool,
    what: str,
) -> Finding:
    """A share of the runs (field `name` of `_Sum`) over the last `width` minutes above (or
    at least) `limit`."""
    need = ctx.rules.min_runs
    held = ctx.minutes.rates(width, name, need=need, limit=limit, at_least=at_least)
    start, latest = _streak(ctx.minutes.first(width), held)
    last_held = ctx.last_held(latest)
    now = ctx.minutes.sum(ctx.now_minute - width + 1, ctx.now_minute)
    count = int(getattr(now, name))
    window = f"over {_span(width)} to {ctx.clock.at(ctx.now_minute + 1)}"
    op = "at least" if at_least else "above"
    figures: dict[str, float] = {
        "runs": now.runs,
        "count": count,
        "threshold": limit,
        "window_minutes": width,
        "min_runs": need,
    }
    if now.runs < need:
        return ctx.finding(
            rule,
            title,
            severity,
            Holding.TOO_FEW_RUNS,
            f"only {_count(now.runs)} runs {window} ({need} needed to judge the {what})",
            last_held=last_held,
            figures=figures,
        )
    rate = count / now.runs
    figures["value"] = rate
    shown = f"{what} {_pct(rate)} ({_count(count)} of {_count(now.runs)} runs) {window}"
    return _held_or_clear(
        ctx,
        (rule, title, severity),
        start if held[-1] else None,
        shown,
        f"{op} {_pct_limit(limit)}",
        last_held=last_held,
        figures=figures,
    )


def _held_or_clear(
    ctx: _Ctx,
    rule: tuple[str, str, Severity],
    start: int | None,
    shown: str,
    limit: str,
    *,
    last_held: datetime | None,
    figures: dict[str, float],
) -> Finding:
    """The finding of a rule whose condition holds since minute `start` (None: it does not
    hold now): its figures `shown`, then "<limit> since <time>" or "not <limit>"."""
    name, title, severity = rule
    if start is None:
        return ctx.finding(
            name,
            title,
            severity,
            Holding.CLEAR,
            f"{shown}, not {limit}",
            last_held=last_held,
            figures=figures,
        )
    began = minute_start(start)
    return ctx.finding(
        name,
        title,
        severity,
        Holding.FIRING,
        f"{shown}, {limit} since {ctx.clock.at(began)}",
        since=began,
        last_held=last_held,
        figures=figures,
    )


def _minutes_of(span: timedelta) -> int:
    return max(int(span.total_seconds() // 60), 1)


def _error_rate_over(ctx: _Ctx, rule: str, limit: float, severity: Severity) -> Finding:
    """The error rate over `error_rate_window` above `limit`."""
    width = _minutes_of(ctx.rules.error_rate_window)
    return _window_rule(
        ctx,
        rule=rule,
        title=f"error rate above {_pct_limit(limit)} over {_span(width)}",
        severity=severity,
        width=width,
        name="failed",
        limit=limit,
        at_least=False,
        what="error rate",
    )


def _error_rate(ctx: _Ctx) -> Finding:
    return _error_rate_over(ctx, "error-rate", ctx.rules.error_rate_p3, Severity.P3)


def _error_rate_critical(ctx: _Ctx) -> Finding:
    return _error_rate_over(ctx, "error-rate-critical", ctx.rules.error_rate_p1, Severity.P1)


def _error_rate_sustained(ctx: _Ctx) -> Finding:
    """Every slice of the last `error_rate_p2_sustained` above `error_rate_p2`.

    The slices are `error_rate_p2_slice` long and end at now's minute; each needs at least one
    run, and the whole span `min_runs`. `since` is the start of the streak of consecutive slices
    above the limit that ends now, as far back as the minute history goes, or the start of the
    unbroken run of slice-long windows above it at every minute when that reaches further (so
    `since` does not move as now's minute moves the slices); the text quotes that whole streak.
    """
    r = ctx.rules
    limit = r.error_rate_p2
    slice_ = _minutes_of(r.error_rate_p2_slice)
    count = max(math.ceil(_minutes_of(r.error_rate_p2_sustained) / slice_), 1)
    span = count * slice_
    title = f"error rate above {_pct_limit(limit)} for {_span(span)}"
    mins = ctx.minutes
    first = mins.first(slice_)
    above = mins.rates(slice_, "failed", need=1, limit=limit)
    # streak[i]: how many consecutive slices above the limit end at minute first + i
    streak = [0] * len(above)
    for i, up in enumerate(above):
        if up:
            streak[i] = (streak[i - slice_] if i >= slice_ else 0) + 1
    # the whole span's runs, for the windows ending at minute first + i (i >= span - slice_)
    whole_runs = mins.windows(span, "runs")
    offset = span - slice_
    latest = next(
        (
            i
            for i in range(len(streak) - 1, offset - 1, -1)
            if streak[i] >= count and whole_runs[i - offset] >= r.min_runs
        ),
        None,
    )
    last_held = ctx.last_held(None if latest is None else first + latest)
    whole = mins.sum(ctx.now_minute - span + 1, ctx.now_minute)
    figures: dict[str, float] = {
        "threshold": limit,
        "window_minutes": span,
        "slice_minutes": slice_,
        "min_runs": r.min_runs,
        "runs": whole.runs,
        "count": whole.failed,
    }
    to = ctx.clock.at(ctx.now_minute + 1)
    if whole.runs < r.min_runs:
        return ctx.finding(
            "error-rate-sustained",
            title,
            Severity.P2,
            Holding.TOO_FEW_RUNS,
            f"only {_count(whole.runs)} runs over the last {_span(span)} to {to} "
            f"({r.min_runs} needed to judge the error rate)",
            last_held=last_held,
            figures=figures,
        )
    run = streak[-1]
    figures["value"] = whole.failed / whole.runs
    if run == 0:
        return ctx.finding(
            "error-rate-sustained",
            title,
            Severity.P2,
            Holding.CLEAR,
            f"error rate {_pct(whole.failed / whole.runs)} ({_count(whole.failed)} of "
            f"{_count(whole.runs)} runs) over the last {_span(span)} to {to}; the last "
            f"{_span(slice_)} not above {_pct_limit(limit)}",
            last_held=last_held,
            figures=figures,
        )
    # the streak starts where the slices ending now start, or earlier where every
    # `slice_`-minute window (at any minute, not only those in step with now) was above since
    sliding = len(above) - 1
    while sliding > 0 and above[sliding - 1]:
        sliding -= 1
    start = min(ctx.now_minute - run * slice_ + 1, first + sliding - slice_ + 1)
    # it starts with its first run, not with quiet minutes before it
    while start < ctx.now_minute and mins.sum(start, start).runs == 0:
        start += 1
    length = ctx.now_minute + 1 - start
    streak_sum = mins.sum(start, ctx.now_minute)
    figures.update(
        value=streak_sum.failed / streak_sum.runs,
        runs=streak_sum.runs,
        count=streak_sum.failed,
        streak_minutes=length,
    )
    shown = (
        f"error rate {_pct(streak_sum.failed / streak_sum.runs)} ({_count(streak_sum.failed)} "
        f"of {_count(streak_sum.runs)} runs) from {ctx.clock.at(start)} to {to}, above "
        f"{_pct_limit(limit)} for {_span(length)}"
    )
    if run >= count:
        return ctx.finding(
            "error-rate-sustained",
            title,
            Severity.P2,
            Holding.FIRING,
            shown,
            since=minute_start(start),
            last_held=last_held,
            figures=figures,
        )
    return ctx.finding(
        "error-rate-sustained",
        title,
        Severity.P2,
        Holding.CLEAR,
        f"{shown}, not yet {_span(span)}",
        last_held=last_held,
        figures=figures,
    )


# -- latency -------------------------------------------------------------------------------------


def _latency(ctx: _Ctx) -> Finding:
    """The last `latency_runs` runs with a latency, in time order, all above `latency_ms`.

    `since` is the time of the run that made the streak long enough; `last_held` is now while it
    holds, else the time of the run that broke the latest such streak.
    """
    r = ctx.rules
    need, limit = r.latency_runs, r.latency_ms
    severity = Severity.P2 if ctx.customer_facing else Severity.P3
    title = f"latency above {_ms(limit)} for {need} runs in a row"
    recent = list(ctx.history.recent)
    figures: dict[str, float] = {"threshold": limit, "runs": need}
    # held_at[i]: the `need` runs ending with run i are all slow
    slow = 0
    held_at: list[bool] = []
    for _at, latency in recent:
        slow = slow + 1 if latency > limit else 0
        held_at.append(slow >= need)
    latest = next((i for i in range(len(recent) - 1, -1, -1) if held_at[i]), None)
    last_held: datetime | None = None
    if latest is not None:
        last_held = (
            ctx.now
            if latest == len(recent) - 1
            else datetime.fromtimestamp(recent[latest + 1][0] / 1000, tz=UTC)
        )
    if len(recent) < need:
        return ctx.finding(
            "latency",
            title,
            severity,
            Holding.TOO_FEW_RUNS,
            f"only {len(recent)} runs with a latency ({need} needed)",
            last_held=last_held,
            figures=figures,
        )
    last = [latency for _at, latency in recent[-need:]]
    figures.update(value=min(last), max=max(last))
    shown = ", ".join(_ms(v) for v in last)
    if held_at[-1]:
        i = len(recent) - 1
        while i > 0 and held_at[i - 1]:
            i -= 1
        began = datetime.fromtimestamp(recent[i][0] / 1000, tz=UTC)
        return ctx.finding(
            "latency",
            title,
            severity,
            Holding.FIRING,
            f"the last {need} runs took {shown}, each above {_ms(limit)}, since "
            f"{ctx.clock.at(began)}",
            since=began,
            last_held=last_held,
            figures=figures,
        )
    return ctx.finding(
        "latency",
        title,
        severity,
        Holding.CLEAR,
        f"the last {need} runs took {shown}, not all above {_ms(limit)}",
        last_held=last_held,
        figures=figures,
    )


# -- tokens and cost per run ---------------------------------------------------------------------


def _same_hours(ctx: _Ctx, width: int) -> _Sum:
    """The hours touching the same local clock window on each of the previous baseline days.

    The same local time, so across a DST change the day before is 23 or 25 hours back.
    """
    zone = ctx.clock.hours.zone
    local = ctx.now.astimezone(zone)
    total = _ZERO
    for k in range(1, ctx.rules.baseline_days + 1):
        then = datetime.combine(local.date() - timedelta(days=k), local.time(), tzinfo=zone)
        end = minute_of(then)
        for hour in range(hour_of(end - width + 1), end + 1, 60):
            total = _plus(total, _of(ctx.history.hours.get(hour)))
    return total


def _per_run_rule(
    ctx: _Ctx,
    *,
    rule: str,
    title: str,
    severity: Severity,
    width: int,
    name: str,
    baseline: float,
    factor: float,
    what: str,
    baseline_text: str,
    show: Callable[[float], str],
) -> Finding:
    need = ctx.rules.min_runs
    limit = factor * baseline
    held = ctx.minutes.rates(width, name, need=need, limit=limit)
    start, latest = _streak(ctx.minutes.first(width), held)
    last_held = ctx.last_held(latest)
    now = ctx.minutes.sum(ctx.now_minute - width + 1, ctx.now_minute)
    window = f"over {_span(width)} to {ctx.clock.at(ctx.now_minute + 1)}"
    figures: dict[str, float] = {
        "runs": now.runs,
        "baseline": baseline,
        "factor": factor,
        "threshold": limit,
        "window_minutes": width,
        "min_runs": need,
    }
    if now.runs < need:
        return ctx.finding(
            rule,
            title,
            severity,
            Holding.TOO_FEW_RUNS,
            f"only {_count(now.runs)} runs {window} ({need} needed to judge the {what})",
            last_held=last_held,
            figures=figures,
        )
    value = float(getattr(now, name)) / now.runs
    figures["value"] = value
    ratio = f"{value / baseline * 100:.0f} %" if baseline > 0 else "n/a"
    shown = (
        f"{what} {show(value)} over {_count(now.runs)} runs {window}, {ratio} of the baseline "
        f"{show(baseline)} ({baseline_text})"
    )
    return _held_or_clear(
        ctx,
        (rule, title, severity),
        start if held[-1] else None,
        shown,
        f"above {factor * 100:g} %",
        last_held=last_held,
        figures=figures,
    )


def _tokens_text(value: float) -> str:
    return f"{value:,.0f} tokens"


def _tokens_per_run(ctx: _Ctx) -> Finding:
    """Tokens per run over the last `token_usage_window` above `token_usage_p3_factor` x the
    tokens per run of the same local clock hours on each of the previous `baseline_days`."""
    r = ctx.rules
    width = _minutes_of(r.token_usage_window)
    factor = r.token_usage_p3_factor
    title = f"tokens per run above {factor * 100:g} % of baseline"
    if not ctx.enough_history():
        return ctx.no_history("tokens-per-run", title, Severity.P3)
    same = _same_hours(ctx, width)
    if same.runs <= 0 or same.tokens <= 0:
        return ctx.finding(
            "tokens-per-run",
            title,
            Severity.P3,
            Holding.NO_BASELINE,
            f"no tokens reported at these hours on the previous {_days(r.baseline_days)}",
        )
    return _per_run_rule(
        ctx,
        rule="tokens-per-run",
        title=title,
        severity=Severity.P3,
        width=width,
        name="tokens",
        baseline=same.tokens / same.runs,
        factor=factor,
        what="tokens per run",
        baseline_text=f"the same hours of the previous {_days(r.baseline_days)}",
        show=_tokens_text,
    )


def _cost_per_run(ctx: _Ctx, pinned: float | None) -> Finding:
    """Cost per run over the last `cost_per_run_window` above `cost_per_run_factor` x the
    baseline: the pinned value, else the median cost per run of the hours with runs and a cost
    in the previous `baseline_days` (the days before now's hour)."""
    r = ctx.rules
    width = _minutes_of(r.cost_per_run_window)
    factor = r.cost_per_run_factor
    title = f"cost per run above {factor * 100:g} % of baseline"
    if pinned is not None:
        baseline, how = pinned, "pinned in the policy"
    else:
        if not ctx.enough_history():
            return ctx.no_history("cost-per-run", title, Severity.P2)
        current = hour_of(ctx.now_minute)
        per_hour = [
            tally.cost_usd / tally.runs
            for hour, tally in ctx.history.hours.items()
            if current - r.baseline_days * _DAY <= hour < current
            and tally.runs > 0
            and tally.cost_usd > 0
        ]
        if not per_hour:
            return ctx.finding(
                "cost-per-run",
                title,
                Severity.P2,
                Holding.NO_BASELINE,
                f"no cost reported in the previous {_days(r.baseline_days)}",
            )
        baseline = statistics.median(per_hour)
        how = f"median of {len(per_hour)} hours of the previous {_days(r.baseline_days)}"
    return _per_run_rule(
        ctx,
        rule="cost-per-run",
        title=title,
        severity=Severity.P2,
        width=width,
        name="cost",
        baseline=baseline,
        factor=factor,
        what="cost per run",
        baseline_text=how,
        show=_usd,
    )


# -- spend ---------------------------------------------------------------------------------------


def _daily_average(ctx: _Ctx, today: date) -> float:
    """The mean spend of the `baseline_days` full local days before `today`."""
    known = ctx.averages.get(today)
    if known is None:
        zone = ctx.clock.hours.zone
        days = ctx.rules.baseline_days
        edges = [local_midnight(today - timedelta(days=k), zone) for k in range(days + 1)]
        known = ctx.averages[today] = (
            sum(ctx.span(edges[k + 1], edges[k]).cost for k in range(days)) / days
        )
    return known


def _spend_today(ctx: _Ctx) -> Finding:
    """Spend of the local day so far above `daily_spend_p3_factor` x the daily average of the
    `baseline_days` full local days before it.

    `since` is when today's running total crossed the limit (to the minute where the minute
    history covers it, else to the hour); `last_held` is now while it holds, else midnight when
    yesterday ended above its own limit.
    """
    r = ctx.rules
    factor = r.daily_spend_p3_factor
    title = f"spend today above {factor * 100:g} % of the {r.baseline_days}-day daily average"
    if not ctx.enough_history():
        return ctx.no_history("spend-today", title, Severity.P3)
    zone = ctx.clock.hours.zone
    today = ctx.now.astimezone(zone).date()
    midnight = local_midnight(today, zone)
    average = _daily_average(ctx, today)
    limit = factor * average
    spent = ctx.span(midnight, ctx.now_minute + 1).cost
    figures: dict[str, float] = {
        "value": spent,
        "baseline": average,
        "factor": factor,
        "threshold": limit,
    }
    last_held: datetime | None = None
    if ctx.now - minute_start(midnight) < r.hold_down:
        yesterday = today - timedelta(days=1)
        before = ctx.span(local_midnight(yesterday, zone), midnight).cost
        if before > factor * _daily_average(ctx, yesterday) > 0:
            last_held = minute_start(midnight)
    if average <= 0:
        return ctx.finding(
            "spend-today",
            title,
            Severity.P3,
            Holding.NO_BASELINE,
            f"spend today {_usd(spent)}; no spend in the previous {_days(r.baseline_days)}",
            last_held=last_held,
            figures=figures,
        )
    shown = (
        f"spend today {_usd(spent)} to {ctx.clock.at(ctx.now_minute + 1)}, "
        f"{spent / average * 100:.0f} % of the daily average {_usd(average)} "
        f"of the previous {_days(r.baseline_days)}"
    )
    if spent <= limit:
        return ctx.finding(
            "spend-today",
            title,
            Severity.P3,
            Holding.CLEAR,
            f"{shown}, not above {factor * 100:g} %",
            last_held=last_held,
            figures=figures,
        )
    began = _crossing(ctx, midnight, limit)
    return ctx.finding(
        "spend-today",
        title,
        Severity.P3,
        Holding.FIRING,
        f"{shown}, above {factor * 100:g} % since {ctx.clock.at(began)}",
        since=began,
        last_held=ctx.now,
        figures=figures,
    )


def _crossing(ctx: _Ctx, since: int, limit: float) -> datetime:
    """When the running spend from minute `since` first went above `limit`."""
    total = 0.0
    hour = hour_of(since)
    while hour <= ctx.now_minute:
        a, b = max(since, hour), min(ctx.now_minute + 1, hour + 60)
        if ctx.minutes.covers(a):
            for m in range(a, b):
                total += ctx.minutes.sum(m, m).cost
                if total > limit:
                    return minute_start(m)
        else:
            total += ctx.span(a, b).cost
            if total > limit:
                return minute_start(a)
        hour += 60
    return ctx.now


def _spend_24h(ctx: _Ctx) -> Finding:
    """Spend over the last 24 hours at least `daily_spend_p2_factor` x the daily average.

    The 24 hours end with now's minute. `since` and `last_held` are judged to the hour: the
    24 hours ending with each complete hour, back from now, with the same average.
    """
    r = ctx.rules
    factor = r.daily_spend_p2_factor
    span = _minutes_of(r.daily_spend_p2_sustained)
    title = f"spend over {_span(span)} at {factor:g}x the daily average"
    if not ctx.enough_history():
        return ctx.no_history("spend-24h", title, Severity.P2)
    zone = ctx.clock.hours.zone
    today = ctx.now.astimezone(zone).date()
    average = _daily_average(ctx, today)
    limit = factor * average
    spent = ctx.span(ctx.now_minute + 1 - span, ctx.now_minute + 1).cost
    figures: dict[str, float] = {
        "value": spent,
        "baseline": average,
        "factor": factor,
        "threshold": limit,
        "window_minutes": span,
    }
    if average <= 0:
        return ctx.finding(
            "spend-24h",
            title,
            Severity.P2,
            Holding.NO_BASELINE,
            f"spend over the last {_span(span)} {_usd(spent)}; no spend in the previous "
            f"{_days(r.baseline_days)}",
            figures=figures,
        )
    # the 24 hours ending with each complete hour, newest first, for a week back at most
    current = hour_of(ctx.now_minute)
    hours = ctx.history.hours
    count = span // 60

    def cost_at(hour: int) -> float:
        return _of(hours.get(hour)).cost

    ends = [current - 60 * k for k in range(1, r.baseline_days * 24)]
    rolling: list[float] = []
    if ends:
        window = sum(cost_at(ends[0] - 60 * j) for j in range(count))
        for end in ends:
            rolling.append(window)
            window += cost_at(end - 60 * count) - cost_at(end)
    now_holds = spent >= limit
    last_held: datetime | None = ctx.now if now_holds else None
    if last_held is None:
        latest = next((i for i, value in enumerate(rolling) if value >= limit), None)
        if latest is not None:
            last_held = minute_start(ends[latest] + 60)
    shown = (
        f"spend over the last {_span(span)} to {ctx.clock.at(ctx.now_minute + 1)} {_usd(spent)}, "
        f"{spent / average:.2f}x the daily average {_usd(average)} of the previous "
        f"{_days(r.baseline_days)}"
    )
    if not now_holds:
        return ctx.finding(
            "spend-24h",
            title,
            Severity.P2,
            Holding.CLEAR,
            f"{shown}, below {factor:g}x",
            last_held=last_held,
            figures=figures,
        )
    began = current
    for end, value in zip(ends, rolling, strict=True):
        if value < limit:
            break
        began = end
    since = minute_start(began)
    return ctx.finding(
        "spend-24h",
        title,
        Severity.P2,
        Holding.FIRING,
        f"{shown}, at least {factor:g}x since {ctx.clock.at(since)}",
        since=since,
        last_held=last_held,
        figures=figures,
    )


# -- deviation from the business-hours baseline ----------------------------------------------------


def _open_overlap(
    windows: Sequence[tuple[int, int]], starts: Sequence[int], since: int, until: int
) -> int:
    """How many minutes of since..until (exclusive) business hours are open (`starts`: the
    windows' starts)."""
    i = max(bisect.bisect_right(starts, since) - 1, 0)
    total = 0
    while i < len(windows) and windows[i][0] < until:
        a, b = max(windows[i][0], since), min(windows[i][1], until)
        if b > a:
            total += b - a
        i += 1
    return total


# the smallest band around a baseline, for each metric: a change smaller than this is noise
# even when the baseline never varied (sigma 0)
_FLOORS = {
    "error-rate": 0.01,
    "p95-latency": 50.0,
    "refusal-rate": 0.01,
    "confidence": 0.02,
    "handoff-rate": 0.01,
    "runs-per-hour": 1.0,
}
_RELATIVE_FLOOR = 0.05
_METRIC_NAMES = {
    "error-rate": "error rate",
    "p95-latency": "p95 latency",
    "refusal-rate": "refusal rate",
    "confidence": "mean confidence",
    "handoff-rate": "handoff rate",
    "runs-per-hour": "runs/h",
}


@functools.lru_cache(maxsize=16)
def _business_hours(
    calendar: BusinessHours, now_minute: int, baseline_days: int
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The business hours the deviation rules read at `now_minute`, the same for every workflow.

    Returns the baseline's hours (of the `baseline_days` full local days before today, each at
    least half open) and the business hours back from now's, newest first, with their open
    minutes (now's hour: up to now, when any of it is open).
    """
    zone = calendar.zone
    today = minute_start(now_minute).astimezone(zone).date()
    windows = [
        (minute_of(ws), minute_of(we))
        for ws, we in calendar.open_windows(
            today - timedelta(days=baseline_days + 1), today + timedelta(days=1)
        )
    ]
    starts = [start for start, _end in windows]
    base_since = local_midnight(today - timedelta(days=baseline_days), zone)
    base_until = local_midnight(today, zone)
    base_hours = tuple(
        h
        for h in range(hour_of(base_since) + (60 if base_since % 60 else 0), base_until, 60)
        if _open_overlap(windows, starts, h, h + 60) >= 30
    )
    current = hour_of(now_minute)
    walk_from = max(hour_of(base_since), current - baseline_days * _DAY)
    walk: list[tuple[int, int]] = []
    for h in range(current, walk_from - 1, -60):
        open_ = _open_overlap(windows, starts, h, min(h + 60, now_minute + 1))
        if open_ >= 30 or (h == current and open_ > 0):
            walk.append((h, open_))
    return base_hours, tuple(walk)


def _metric_value(metric: str, tally: Tally, need: int, minutes: int) -> float | None:
    """An hour's value of a metric; None when it cannot be judged (too few runs or samples).

    `minutes`: how much of the hour has passed (60 for a complete hour); runs/h of a partial
    hour is scaled to the hour, once `_PARTIAL_HOUR_MINUTES` have passed.
    """
    if metric == "runs-per-hour":
        if minutes < _PARTIAL_HOUR_MINUTES:
            return None
        return tally.runs * 60 / minutes
    if metric == "p95-latency":
        return percentile(tally, 0.95) if tally.latency_count >= need else None
    if metric == "confidence":
        if tally.confidence_count < need:
            return None
        return tally.confidence_sum / tally.confidence_count
    if tally.runs < need:
        return None
    part = {
        "error-rate": tally.failed,
        "refusal-rate": tally.refusals,
        "handoff-rate": tally.handoffs,
    }[metric]
    return part / tally.runs


def _outside_streak(
    walk: Sequence[tuple[int, int]], outside: Sequence[bool | None], *, skip: int | None
) -> tuple[int, int | None]:
    """Add up the open minutes of the unbroken run of hours outside the band, newest first.

    The hour `skip` (the current one, for the complete hours' streak) and an hour that cannot
    be judged yet (None) are left out.
    """
    total, start = 0, None
    for (hour, open_), verdict in zip(walk, outside, strict=False):
        if verdict is None or hour == skip:
            continue
        if not verdict:
            break
        total += open_
        start = hour
    return total, start


def _show_metric(metric: str, value: float) -> str:
    if metric in ("error-rate", "refusal-rate", "handoff-rate"):
        return _pct(value)
    if metric == "p95-latency":
        return _ms(value)
    if metric == "confidence":
        return f"{value:.2f}"
    return f"{value:,.1f}"


def _deviations(ctx: _Ctx) -> list[Finding]:
    """Each metric's hourly value outside mean +- `deviation_stddevs` sigma of its baseline for
    more than `deviation_sustained_business` of consecutive business hours up to now.

    Baseline: the mean and sample standard deviation of the metric's values in the business
    hours of the `baseline_days` full local days before today (an hour is a business hour when
    at least half of it is open; today is left out so a drift does not dilute its own
    baseline). The band is at least `_FLOORS[metric]` and 5 % of the mean wide on each side, so
    a constant baseline (sigma 0) does not fire on noise. The streak walks back from now's hour
    over business hours (other hours neither count nor break it); an hour that cannot be judged
    (fewer than `min_runs` runs, or samples for p95 latency and confidence) breaks it, except
    the current, partial hour, which is left out until it can be judged. The streak's business
    time (open minutes, the current hour's up to now) must exceed the duration.
    `since` is the start of the streak's first hour; `last_held` is now while it fires, else
    the start of the current hour when the complete hours before it were enough.
    """
    r = ctx.rules
    need = r.min_runs
    k = r.deviation_stddevs
    duration = _minutes_of(r.deviation_sustained_business)
    findings = []
    hours = ctx.history.hours
    current = hour_of(ctx.now_minute)
    base_hours, walk = _business_hours(ctx.clock.hours, ctx.now_minute, r.baseline_days)
    for metric in DEVIATION_METRICS:
        rule = f"deviation-{metric}"
        name = _METRIC_NAMES[metric]
        title = (
            f"{name} outside {k:g} stddev of its baseline for {_span(duration)} of business hours"
        )
        if not ctx.enough_history():
            findings.append(ctx.no_history(rule, title, Severity.P2))
            continue
        values = [
            v
            for h in base_hours
            if (v := _metric_value(metric, hours.get(h) or Tally(), need, 60)) is not None
        ]
        if len(values) < 2:
            findings.append(
                ctx.finding(
                    rule,
                    title,
                    Severity.P2,
                    Holding.NO_BASELINE,
                    f"fewer than 2 business hours with enough runs to judge the {name} in the "
                    f"previous {_days(r.baseline_days)}",
                    figures={"baseline_hours": len(values)},
                )
            )
            continue
        mean = sum(values) / len(values)
        stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        band = max(k * stddev, _FLOORS[metric], _RELATIVE_FLOOR * abs(mean))
        # each business hour's verdict, newest first: True outside the band, False inside or
        # not judged, None for the current hour while it cannot be judged yet
        outside: list[bool | None] = []
        latest_value: float | None = None
        for h, _open in walk:
            value = _metric_value(
                metric, hours.get(h) or Tally(), need, min(60, ctx.now_minute + 1 - h)
            )
            if h == current:
                latest_value = value
                if value is None:
                    outside.append(None)
                    continue
            verdict = value is not None and abs(value - mean) > band
            outside.append(verdict)
            if not verdict and h != current:
                break
        streak_minutes, start = _outside_streak(walk, outside, skip=None)
        complete_minutes, _start = _outside_streak(walk, outside, skip=current)
        figures: dict[str, float] = {
            "baseline": mean,
            "stddev": stddev,
            "band": band,
            "baseline_hours": len(values),
            "streak_minutes": streak_minutes,
            "threshold_minutes": duration,
        }
        if latest_value is not None:
            figures["value"] = latest_value
        sigma = f"stddev {_show_metric(metric, stddev)}"
        if stddev <= 1e-9 * max(1.0, abs(mean)):
            sigma += f" (constant baseline: band ±{_show_metric(metric, band)})"
        elif band > k * stddev:
            sigma += f" (band ±{_show_metric(metric, band)}, the smallest judged)"
        base = (
            f"baseline {_show_metric(metric, mean)}, {sigma}, over {len(values)} business hours "
            f"of the previous {_days(r.baseline_days)}"
        )
        now_text = (
            f"{name} {_show_metric(metric, latest_value)} this hour"
            if latest_value is not None
            else f"{name} not judged this hour yet"
        )
        firing = streak_minutes > duration
        last_held = ctx.now if firing else None
        if not firing and complete_minutes > duration:
            last_held = minute_start(current)
        if firing:
            assert start is not None
            since = minute_start(start)
            text = (
                f"{now_text}; outside ±{_show_metric(metric, band)} of the {base} in every "
                f"business hour since {ctx.clock.at(since)} ({_span(streak_minutes)} of "
                f"business hours)"
            )
            findings.append(
                ctx.finding(
                    rule,
                    title,
                    Severity.P2,
                    Holding.FIRING,
                    text,
                    since=since,
                    last_held=last_held,
                    figures=figures,
                )
            )
            continue
        tail = (
            f"; outside it for {_span(streak_minutes)} of business hours, not more than "
            f"{_span(duration)}"
            if streak_minutes
            else "; within the band"
        )
        findings.append(
            ctx.finding(
                rule,
                title,
                Severity.P2,
                Holding.CLEAR,
                f"{now_text}; {base}{tail}",
                last_held=last_held,
                figures=figures,
            )
        )
    return findings


# -- refusals ------------------------------------------------------------------------------------


def _refusals(ctx: _Ctx) -> Finding:
    r = ctx.rules
    width = _minutes_of(r.refusals_window)
    return _window_rule(
        ctx,
        rule="refusals",
        title=f"refusals at {_pct_limit(r.refusals_p2)} or more over {_span(width)}",
        severity=Severity.P2,
        width=width,
        name="refusals",
        limit=r.refusals_p2,
        at_least=True,
        what="refusal rate",
    )


# -- silence -------------------------------------------------------------------------------------


def _silence(ctx: _Ctx, expect_every: timedelta | None, silence_off: bool) -> Finding:
    """No run for `expect_every` of business time, or none over a whole business day.

    Judged only while business hours are open (OFF otherwise, and with `expect_every: off`).
    The business-day rule holds when a complete business window lies between the last run and
    now. `last_held` is now whenever the silence goes on, even while the rule is OFF at night,
    so an open silence incident is not resolved by the evening and reopened in the morning;
    `since` is when the silence first met a condition.
    """
    title = (
        f"no run for {_span(expect_every.total_seconds() / 60)} of business hours"
        if expect_every is not None
        else "no run over a business day"
    )
    calendar = ctx.clock.hours
    if silence_off:
        return ctx.finding("silence", title, Severity.P2, Holding.OFF, "expect_every is off")
    last_ms = ctx.history.last_run_ms
    if last_ms is None:
        return ctx.finding("silence", title, Severity.P2, Holding.OFF, "no runs seen yet")
    last = datetime.fromtimestamp(last_ms / 1000, tz=UTC)
    quiet = calendar.business_time_between(last, ctx.now)
    figures: dict[str, float] = {"business_minutes_since_run": quiet.total_seconds() / 60}
    begins: list[tuple[datetime, str]] = []
    if expect_every is not None:
        figures["expect_every_minutes"] = expect_every.total_seconds() / 60
        if quiet > expect_every:
            begins.append(
                (
                    calendar.add_business_time(last, expect_every),
                    f"no run for {_span(quiet.total_seconds() / 60)} of business hours "
                    f"(expected every {_span(expect_every.total_seconds() / 60)})",
                )
            )
    zone = calendar.zone
    first_day = last.astimezone(zone).date()
    for ws, we in calendar.open_windows(first_day, ctx.now.astimezone(zone).date()):
        if ws >= last and we <= ctx.now:
            begins.append(
                (
                    we,
                    f"zero runs over the business day {ws.astimezone(zone):%a %d %b} "
                    f"({ctx.clock.at(ws)} to {ctx.clock.at(we)})",
                )
            )
            break
    held = bool(begins)
    last_held = ctx.now if held else None
    since_text = f"last run {ctx.clock.at(last)}"
    if not calendar.is_open(ctx.now):
        return ctx.finding(
            "silence",
            title,
            Severity.P2,
            Holding.OFF,
            f"outside business hours ({since_text})",
            last_held=last_held,
            figures=figures,
        )
    if not held:
        return ctx.finding(
            "silence",
            title,
            Severity.P2,
            Holding.CLEAR,
            f"{since_text}, {_span(quiet.total_seconds() / 60)} of business hours ago",
            figures=figures,
        )
    began = min(begins)[0]
    return ctx.finding(
        "silence",
        title,
        Severity.P2,
        Holding.FIRING,
        f"{'; '.join(text for _b, text in begins)}; {since_text}",
        since=began,
        last_held=last_held,
        figures=figures,
    )


# -- entry point ---------------------------------------------------------------------------------


def minutes_needed(rules: SeverityRules) -> timedelta:
    """How far back `WatchedHistory.minutes` must reach for these thresholds: each window rule's
    window plus `hold_down` (for `last_held`), and at least 3 hours."""
    windows = (
        rules.error_rate_p2_sustained + rules.error_rate_p2_slice,
        rules.error_rate_window,
        rules.refusals_window,
        rules.token_usage_window,
        rules.cost_per_run_window,
    )
    return max(timedelta(hours=3), max(windows) + rules.hold_down)


def hours_needed(rules: SeverityRules) -> timedelta:
    """How far back `WatchedHistory.hours` must reach: the baseline days, the local day before
    them (a week of 24-hour spend windows, the day's edges in any time zone) and today."""
    return timedelta(days=rules.baseline_days + 2)


def evaluate(
    history: WatchedHistory,
    rules: SeverityRules,
    *,
    now: datetime,
    hours: BusinessHours,
    customer_facing: bool,
    pinned_cost_per_run: float | None,
    expect_every: timedelta | None,
    silence_off: bool = False,
) -> list[Finding]:
    """Judge every rule of `RULE_IDS` on one workflow's history at `now`, in that order."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    now_minute = minute_of(now)
    days = 0 if history.first_minute is None else max(now_minute - history.first_minute, 0) // _DAY
    ctx = _Ctx(
        history=history,
        rules=rules,
        clock=_Clock(now, now_minute, hours),
        minutes=_Minutes(history.minutes, now_minute),
        customer_facing=customer_facing,
        history_days=days,
    )
    return [
        _error_rate(ctx),
        _error_rate_sustained(ctx),
        _error_rate_critical(ctx),
        _latency(ctx),
        _tokens_per_run(ctx),
        _cost_per_run(ctx, pinned_cost_per_run),
        _spend_today(ctx),
        _spend_24h(ctx),
        *_deviations(ctx),
        _refusals(ctx),
        _silence(ctx, expect_every, silence_off),
    ]
