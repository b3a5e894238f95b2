"""A hand-filled history of one workflow for the watched severity rules' tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from bot.domain.calendar import BusinessHours
from bot.domain.severity import SeverityRules
from bot.domain.watch.history import Change, Tally, epoch_ms, hour_of, minute_of, minute_start
from bot.domain.watch.rules import Finding, WatchedHistory, evaluate

WORKFLOW = "support-bot"
# a Wednesday afternoon
NOW = datetime(2026, 11, 25, 14, 30, 30, tzinfo=UTC)
NOW_MINUTE = minute_of(NOW)
UTC_HOURS = BusinessHours()


def tally(
    runs: int,
    *,
    failed: int = 0,
    refusals: int = 0,
    tokens: int = 0,
    cost: float = 0.0,
    handoffs: int = 0,
    latencies: Iterable[float] = (),
    confidences: Iterable[float] = (),
) -> Tally:
    """A tally of `runs` runs, `failed` of them errors."""
    counted = Tally(
        runs=runs,
        errors=failed,
        refusals=refusals,
        tokens_in=tokens,
        cost_usd=cost,
        handoffs=handoffs,
    )
    counted.add_latencies(latencies)
    counted.add_confidences(confidences)
    return counted


class Book:
    """Minute and hour tallies written by hand; a minute also counts in its hour."""

    def __init__(self) -> None:
        self.minutes: dict[int, Tally] = {}
        self.hours: dict[int, Tally] = {}
        self.first: int | None = None
        self.last_ms: int | None = None

    def _seen(self, minute: int, last_ms: int) -> None:
        self.first = minute if self.first is None else min(self.first, minute)
        self.last_ms = last_ms if self.last_ms is None else max(self.last_ms, last_ms)

    def minute(self, minute: int, counted: Tally) -> None:
        """Add a tally to one minute (and its hour)."""
        if counted.runs <= 0:
            return
        self.minutes.setdefault(minute, Tally()).merge(counted)
        self.hours.setdefault(hour_of(minute), Tally()).merge(counted)
        self._seen(minute, minute * 60_000 + 30_000)

    def minutes_back(self, count: int, counted: Tally, *, end: int = NOW_MINUTE) -> None:
        """Add the same tally to each of the `count` minutes ending with minute `end`."""
        for minute in range(end - count + 1, end + 1):
            self.minute(minute, _copy(counted))

    def hour(self, start: int, counted: Tally) -> None:
        """Add a tally to the hour starting at minute `start` only (older than the minutes)."""
        if counted.runs <= 0:
            return
        self.hours.setdefault(start, Tally()).merge(counted)
        self._seen(start, start * 60_000 + 59 * 60_000)

    def since(self, at: datetime) -> None:
        """Say the history starts at `at` (a run there, counted in no window of the tests)."""
        self._seen(minute_of(at), epoch_ms(at))

    def history(
        self,
        *,
        recent: Sequence[tuple[int, float]] = (),
        changes: Sequence[Change] = (),
        last_run_ms: int | None = None,
    ) -> WatchedHistory:
        return WatchedHistory(
            workflow=WORKFLOW,
            minutes=self.minutes,
            hours=self.hours,
            recent=recent,
            first_minute=self.first,
            last_run_ms=self.last_ms if last_run_ms is None else last_run_ms,
            changes=changes,
        )


def _copy(counted: Tally) -> Tally:
    fresh = Tally()
    fresh.merge(counted)
    return fresh


def judge(
    history: WatchedHistory,
    *,
    now: datetime = NOW,
    rules: SeverityRules | None = None,
    hours: BusinessHours = UTC_HOURS,
    customer_facing: bool = False,
    pinned_cost_per_run: float | None = None,
    expect_every: timedelta | None = None,
    silence_off: bool = False,
) -> dict[str, Finding]:
    """Evaluate every rule, by rule id."""
    found = evaluate(
        history,
        rules or SeverityRules(),
        now=now,
        hours=hours,
        customer_facing=customer_facing,
        pinned_cost_per_run=pinned_cost_per_run,
        expect_every=expect_every,
        silence_off=silence_off,
    )
    return {finding.rule: finding for finding in found}


class Hour(NamedTuple):
    """What a workflow did in one hour: runs, failed runs, per-run tokens, cost, confidence."""

    runs: int
    failed: int = 0
    tokens: int = 1000
    cost: float = 0.01
    confidence: float = 0.8


def fill(
    book: Book,
    shape: Callable[[datetime], Hour | None],
    *,
    since: datetime,
    now: datetime = NOW,
) -> None:
    """Write the hours from `since` up to now's (partial) hour, as `shape` says of each hour's
    start; the hours of the last three spread over their minutes (runs, then failures, one
    more in the first minutes), each minute also in its hour."""
    now_minute = minute_of(now)
    minutes_from = hour_of(now_minute - 179)
    for start in range(hour_of(minute_of(since)), now_minute + 1, 60):
        hour = shape(minute_start(start))
        if hour is None or hour.runs <= 0:
            continue
        if start < minutes_from:
            book.hour(start, _hour_tally(hour, hour.runs, hour.failed))
            continue
        for i in range(min(60, now_minute - start + 1)):
            runs = hour.runs // 60 + (i < hour.runs % 60)
            failed = min(hour.failed // 60 + (i < hour.failed % 60), runs)
            book.minute(start + i, _hour_tally(hour, runs, failed))


def _hour_tally(hour: Hour, runs: int, failed: int) -> Tally:
    return tally(
        runs,
        failed=failed,
        tokens=runs * hour.tokens,
        cost=runs * hour.cost,
        confidences=[hour.confidence] * runs,
    )
