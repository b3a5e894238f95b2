"""Runs and the per-workflow, per-minute tallies they fold into.

A `Tally` is additive: two tallies of the same workflow and minute merge by adding their
counts (the maxima by `max`, the recent latencies by time), so two writers that each add what
they saw lose nothing, and an hour is the merge of its minutes. Time is counted in whole
minutes since the unix epoch (`minute_of`), in UTC.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = [
    "CONFIDENCE_BOUNDS",
    "FUTURE_SLACK",
    "LATENCY_BOUNDS_MS",
    "RECENT",
    "VERSION_CHARS",
    "Change",
    "ChangeSource",
    "Run",
    "RunStatus",
    "Slot",
    "Tally",
    "Version",
    "VersionKind",
    "admission_problem",
    "epoch_ms",
    "fold",
    "hour_of",
    "minute_of",
    "minute_start",
    "run_key",
    "stable_key",
]

# latency buckets' upper bounds in milliseconds: the GenAI semantic conventions' advised
# boundaries for gen_ai.client.operation.duration (0.01 s … 81.92 s) with a bound between each
# two, so a histogram an SDK sends with those boundaries maps onto these exactly
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(
    sorted(
        {10.0 * 2**i for i in range(14)}
        | {15.0 * 2**i for i in range(13)}
        | {120_000.0, 300_000.0, 600_000.0}
    )
)
# confidence buckets' upper bounds: ten buckets of 0.1 (the last one holds 1.0)
CONFIDENCE_BOUNDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# how many of a minute's latest latencies are kept, in order
RECENT = 5

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# how far ahead of the bot's clock a sender's clock may be
FUTURE_SLACK = timedelta(minutes=5)


class RunStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    REFUSAL = "refusal"
    TIMEOUT = "timeout"


class VersionKind(StrEnum):
    """What a workflow ran with (a model, a prompt version) or failed with (an error text)."""

    MODEL = "model"
    PROMPT = "prompt"
    ERROR = "error"


# the longest model name, prompt version or error text kept
VERSION_CHARS = 200


def minute_of(at: datetime) -> int:
    """Return the whole minutes since the epoch of an aware instant."""
    return int((at - _EPOCH).total_seconds() // 60)


def hour_of(minute: int) -> int:
    """Return the first minute of the hour that holds `minute`."""
    return minute - minute % 60


def admission_problem(
    at: datetime, now: datetime, keep: timedelta, history: timedelta | None = None
) -> str | None:
    """Say why a run at `at` cannot be kept: older than `keep`, or from the future.

    `keep` is how long repeats are recognised; when it is shorter than the `history`, the
    sentence says so (a run older than it could be a repeat no one can tell apart).
    """
    if at < now - keep:
        if history is not None and keep < history:
            return (
                f"at is older than {_span(keep)}, the window in which a repeated run_id is "
                f"recognised (watch.retention.run_ids)"
            )
        return f"at is older than the {_span(keep, adjective=True)} history the bot keeps"
    if at > now + FUTURE_SLACK:
        return "at is more than 5 minutes in the future"
    return None


def _span(span: timedelta, *, adjective: bool = False) -> str:
    whole_days = span.total_seconds() % 86400 == 0
    count = span.days if whole_days else span.total_seconds() / 3600
    unit = "day" if whole_days else "hour"
    if adjective:
        return f"{count:g}-{unit}"
    return f"{count:g} {unit}{'' if count == 1 else 's'}"


def minute_start(minute: int) -> datetime:
    """Return the instant a minute starts."""
    return _EPOCH + timedelta(minutes=minute)


def epoch_ms(at: datetime) -> int:
    return int((at - _EPOCH).total_seconds() * 1000)


def stable_key(*parts: str) -> int:
    """Return a signed 64-bit key of some text parts, the same in every process."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def run_key(workflow: str, run_id: str) -> int:
    """Return the idempotency key of a run."""
    return stable_key("run", workflow, run_id)


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of an AI workflow, as its sender reports it."""

    workflow: str
    run_id: str
    at: datetime
    status: RunStatus = RunStatus.OK
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    confidence: float | None = None
    handed_off: bool = False
    model: str | None = None
    prompt_version: str | None = None
    error: str | None = None


def _bucket(bounds: Sequence[float], value: float) -> int:
    # a value equal to a bound belongs to that bound's bucket (upper bounds are inclusive)
    return bisect.bisect_left(bounds, value)


@dataclass(slots=True)
class Tally:
    """What one workflow did in one span of time (a minute, or an hour of minutes)."""

    runs: int = 0
    errors: int = 0
    refusals: int = 0
    timeouts: int = 0
    handoffs: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    confidence_count: int = 0
    confidence_sum: float = 0.0
    confidence_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(CONFIDENCE_BOUNDS) + 1)
    )
    # epoch milliseconds of the latest run seen, and (epoch ms, latency ms) of the latest few
    last_at_ms: int | None = None
    recent: list[tuple[int, float]] = field(default_factory=list)
    # (kind, value) -> (first seen, last seen) in epoch ms
    versions: dict[tuple[VersionKind, str], tuple[int, int]] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Runs that failed: errors and timeouts (a refusal is an answer, counted apart)."""
        return self.errors + self.timeouts

    def add_run(self, run: Run, at_ms: int | None = None) -> None:
        """Count one run (`at_ms`: its epoch milliseconds, when the caller has them)."""
        # the hot loop of every runs request: written out rather than through the helpers
        if at_ms is None:
            at_ms = epoch_ms(run.at)
        self.runs += 1
        status = run.status
        if status is not RunStatus.OK:
            if status is RunStatus.ERROR:
                self.errors += 1
            elif status is RunStatus.REFUSAL:
                self.refusals += 1
            elif status is RunStatus.TIMEOUT:
                self.timeouts += 1
        if run.handed_off:
            self.handoffs += 1
        if run.tokens_in:
            self.tokens_in += run.tokens_in
        if run.tokens_out:
            self.tokens_out += run.tokens_out
        if run.cost_usd:
            self.cost_usd += run.cost_usd
        latency = run.latency_ms
        if latency is not None:
            self.latency_count += 1
            self.latency_sum_ms += latency
            self.latency_buckets[bisect.bisect_left(LATENCY_BOUNDS_MS, latency)] += 1
            top = self.latency_max_ms
            if top is None or latency > top:
                self.latency_max_ms = latency
            self._recent(at_ms, latency)
        confidence = run.confidence
        if confidence is not None:
            self.confidence_count += 1
            self.confidence_sum += confidence
            self.confidence_buckets[bisect.bisect_left(CONFIDENCE_BOUNDS, confidence)] += 1
        last = self.last_at_ms
        if last is None or at_ms > last:
            self.last_at_ms = at_ms
        if run.model:
            self.saw_version(VersionKind.MODEL, run.model, at_ms)
        if run.prompt_version:
            self.saw_version(VersionKind.PROMPT, run.prompt_version, at_ms)
        if run.error and status is not RunStatus.OK:
            self.saw_version(VersionKind.ERROR, run.error, at_ms)

    def seen(self, at_ms: int) -> None:
        """Note that something ran at `at_ms`."""
        self.last_at_ms = at_ms if self.last_at_ms is None else max(self.last_at_ms, at_ms)

    def saw_version(self, kind: VersionKind, value: str, at_ms: int) -> None:
        """Note a model or prompt version (or an error text) seen at `at_ms`."""
        key = (kind, value[:VERSION_CHARS])
        span = self.versions.get(key)
        if span is None:
            self.versions[key] = (at_ms, at_ms)
        elif not span[0] <= at_ms <= span[1]:
            self.versions[key] = (min(span[0], at_ms), max(span[1], at_ms))

    def add_latencies(self, values: Iterable[float], *, at_ms: int | None = None) -> None:
        """Count individual latencies; with `at_ms`, each is also one of the recent ones."""
        for value in values:
            self.latency_count += 1
            self.latency_sum_ms += value
            self.latency_buckets[_bucket(LATENCY_BOUNDS_MS, value)] += 1
            self.latency_max_ms = (
                value if self.latency_max_ms is None else max(self.latency_max_ms, value)
            )
            if at_ms is not None:
                self._recent(at_ms, value)

    def add_latency_histogram(
        self,
        bounds_ms: Sequence[float],
        counts: Sequence[int],
        total_ms: float,
        max_ms: float | None,
    ) -> None:
        """Count a histogram of latencies with other boundaries (`counts` has one more item).

        Each source bucket's count goes to the bucket holding its upper bound (the overflow
        bucket to the bucket holding the maximum, when known), so a boundary shared with
        LATENCY_BOUNDS_MS maps exactly and a percentile is never under-stated.
        """
        for index, count in enumerate(counts):
            if count <= 0:
                continue
            if index < len(bounds_ms):
                upper = bounds_ms[index]
            elif max_ms is not None:
                upper = max_ms
            else:
                upper = float("inf")
            self.latency_buckets[_bucket(LATENCY_BOUNDS_MS, upper)] += count
            self.latency_count += count
        self.latency_sum_ms += total_ms
        if max_ms is not None:
            self.latency_max_ms = (
                max_ms if self.latency_max_ms is None else max(self.latency_max_ms, max_ms)
            )

    def add_confidences(self, values: Iterable[float]) -> None:
        """Count individual confidence values (0..1)."""
        for value in values:
            self.confidence_count += 1
            self.confidence_sum += value
            self.confidence_buckets[_bucket(CONFIDENCE_BOUNDS, value)] += 1

    def _recent(self, at_ms: int, latency_ms: float) -> None:
        recent = self.recent
        if not recent or at_ms >= recent[-1][0]:
            recent.append((at_ms, latency_ms))  # the usual case: runs arrive in time order
        else:
            bisect.insort_right(recent, (at_ms, latency_ms), key=lambda item: item[0])
        if len(recent) > RECENT:
            del recent[:-RECENT]

    def merge(self, other: Tally) -> None:
        """Add another tally of the same workflow and span (or of a span inside this one)."""
        for name in (
            "runs", "errors", "refusals", "timeouts", "handoffs", "tokens_in", "tokens_out",
            "cost_usd", "latency_count", "latency_sum_ms", "confidence_count", "confidence_sum",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in (
            (self.latency_buckets, other.latency_buckets),
            (self.confidence_buckets, other.confidence_buckets),
        ):
            for index, count in enumerate(theirs):
                mine[index] += count
        if other.latency_max_ms is not None:
            self.latency_max_ms = (
                other.latency_max_ms
                if self.latency_max_ms is None
                else max(self.latency_max_ms, other.latency_max_ms)
            )
        if other.last_at_ms is not None:
            self.seen(other.last_at_ms)
        for at_ms, latency in other.recent:
            self._recent(at_ms, latency)
        for (kind, value), (first, last) in other.versions.items():
            self.saw_version(kind, value, first)
            self.saw_version(kind, value, last)


@dataclass(frozen=True, slots=True)
class Version:
    """A model, prompt version or error text a workflow was seen with, first and last."""

    workflow: str
    kind: VersionKind
    value: str
    first_seen: datetime
    last_seen: datetime


class ChangeSource(StrEnum):
    """Which input first reported a model or prompt version."""

    RUNS = "runs"
    OTLP = "otlp"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Change:
    """A workflow began to run with a model or prompt version it had not run with before.

    `before` is the value of the same kind last seen before `at` (None for the first one).
    """

    workflow: str
    kind: VersionKind
    before: str | None
    after: str
    at: datetime
    source: ChangeSource

    def describe(self) -> str:
        """Say what changed, e.g. "prompt summary-v12 → summary-v13" or "model gpt-4o (new)"."""
        if self.before is None:
            return f"{self.kind.value} {self.after} (first seen)"
        return f"{self.kind.value} {self.before} → {self.after}"


@dataclass(frozen=True, slots=True)
class Slot:
    """A workflow's tally for the span of `minutes` minutes starting at minute `start`."""

    workflow: str
    start: int
    minutes: int
    tally: Tally

    @property
    def starts_at(self) -> datetime:
        """The instant the span starts."""
        return minute_start(self.start)


def fold(runs: Iterable[Run]) -> dict[tuple[str, int], Tally]:
    """Return the tallies of some runs by (workflow, minute)."""
    tallies: dict[tuple[str, int], Tally] = {}
    for run in sorted(runs, key=lambda r: r.at):
        at_ms = epoch_ms(run.at)
        key = (run.workflow, at_ms // 60_000)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = Tally()
        tally.add_run(run, at_ms)
    return tallies
