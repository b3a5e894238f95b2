"""OpenTelemetry metric points, and the tallies of the watched history they count into.

The edge decodes an OTLP export into `Point`s (plain values, no protobuf); `read` says what
each point is (a workflow's GenAI duration or token usage, one of its own metrics, a metric
the bot does not watch, or a refusal); `count` turns the points into additions to the
per-minute tallies. A delta point adds what it holds, once (its idempotency key is claimed
in the database); a cumulative point adds what it grew by since the stream's previous point,
kept as a `StreamState`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum

from bot.domain.watch.history import (
    CONFIDENCE_BOUNDS,
    FUTURE_SLACK,
    Tally,
    VersionKind,
    admission_problem,
    stable_key,
)

__all__ = [
    "DURATION",
    "SERVER_DURATION",
    "TOKEN_USAGE",
    "WORKFLOW_CHARS",
    "Batch",
    "Measure",
    "MetricNames",
    "Point",
    "PointKind",
    "Reading",
    "Role",
    "StreamState",
    "Temporality",
    "WatchMapping",
    "count",
    "read",
    "stream_key",
]

# the GenAI semantic conventions' client metrics
DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
# a model server's own view of the same calls (a workflow that is a model server sends it)
SERVER_DURATION = "gen_ai.server.request.duration"
_MODEL_ATTRIBUTES = ("gen_ai.response.model", "gen_ai.request.model")
_PROMPT_ATTRIBUTES = ("gen_ai.prompt.version", "prompt_version")
_ERROR_TYPE = "error.type"
_TOKEN_TYPE = "gen_ai.token.type"
_INPUT_TOKENS = frozenset({"input", "prompt"})
_OUTPUT_TOKENS = frozenset({"output", "completion"})
# the longest workflow name kept (the history's column), and the largest figures one point may
# carry: a sender's bug, never a real minute of calls, and beyond what the columns hold
WORKFLOW_CHARS = 200
_MAX_COUNT = 10**9
_MAX_TOTAL = 1e15
# a duration's unit -> milliseconds per unit
_DURATION_UNITS = {"s": 1000.0, "": 1000.0, "ms": 1.0}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# how far inside the admitted window a point's time needs no exact check (float seconds)
_EDGE_NS = 10_000_000


class PointKind(StrEnum):
    SUM = "sum"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    # a summary's quantiles cannot be added up: its points are accepted and not counted
    SUMMARY = "summary"


class Temporality(IntEnum):
    """OTLP's AggregationTemporality, by its wire number."""

    UNSPECIFIED = 0
    DELTA = 1
    CUMULATIVE = 2


@dataclass(slots=True)
class Point:
    """One data point of an OTLP export, with what identifies its stream.

    Not frozen, though never changed once made (`dataclasses.replace` makes a changed copy):
    one is made per data point of an export, and a frozen dataclass's constructor costs three
    times as much.

    Attribute values are text (the edge renders numbers, booleans and lists). A histogram
    (explicit, or exponential turned into explicit boundaries by the edge) has `count`,
    `total` (its sum), `bounds` and `buckets` (one more bucket than bounds, or none) and
    `max`; a sum or gauge has `value`.
    """

    metric: str
    kind: PointKind
    time_ns: int
    start_ns: int = 0
    unit: str = ""
    temporality: Temporality = Temporality.UNSPECIFIED
    monotonic: bool = False
    resource: tuple[tuple[str, str], ...] = ()
    scope: str = ""
    scope_version: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    value: float | None = None
    count: int = 0
    total: float | None = None
    bounds: tuple[float, ...] = ()
    buckets: tuple[int, ...] = ()
    max: float | None = None
    # the sender marks a stream that stopped (OTLP's FLAG_NO_RECORDED_VALUE): nothing to count
    no_value: bool = False

    def attribute(self, name: str) -> str | None:
        """Return a data point attribute's value, or None."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def resource_attribute(self, name: str) -> str | None:
        for key, value in self.resource:
            if key == name:
                return value
        return None


def stream_key(point: Point) -> int:
    """Return the key of a point's stream: resource, scope, metric and attributes."""
    resource = sorted(point.resource)
    attributes = sorted(point.attributes)
    return stable_key(
        "otlp-stream",
        str(len(resource)),
        *(part for pair in resource for part in pair),
        point.scope,
        point.scope_version,
        point.metric,
        str(len(attributes)),
        *(part for pair in attributes for part in pair),
    )


def _delta_key(stream: int, point: Point) -> int:
    return stable_key("otlp", str(stream), str(point.start_ns), str(point.time_ns))


# -- what the policy says about telemetry, as plain values -------------------------------------


@dataclass(frozen=True, slots=True)
class MetricNames:
    """A workflow's own metrics, by name (`workflows.<name>.watch.metrics`)."""

    cost: str | None = None
    confidence: str | None = None
    refusals: str | None = None
    handoffs: str | None = None


@dataclass(frozen=True, slots=True)
class WatchMapping:
    """How OTLP data maps to workflows, and how far back a point may be."""

    workflow_attribute: str = "service.name"
    # a workflow's name or alias -> the workflow
    workflows: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, MetricNames] = field(default_factory=dict)
    keep: timedelta = timedelta(days=35)
    # the minute history, when points are remembered (`keep`) for less
    history: timedelta | None = None

    def workflow_of(self, point: Point) -> str | None:
        """Return the workflow a point belongs to: its attribute, else its resource's."""
        value = point.attribute(self.workflow_attribute)
        if value is None:
            value = point.resource_attribute(self.workflow_attribute)
        if not value:
            return None
        return self.workflows.get(value, value)


# -- reading points -----------------------------------------------------------------------------


class Role(StrEnum):
    """What a point measures for its workflow."""

    DURATION = "duration"
    TOKENS = "tokens"
    COST = "cost"
    CONFIDENCE = "confidence"
    REFUSALS = "refusals"
    HANDOFFS = "handoffs"


@dataclass(slots=True)
class Measure:
    """A point the bot counts: whose it is, what it measures, its stream.

    Not frozen, though never changed: one is made per data point of an export, and a frozen
    dataclass's constructor costs three times as much.
    """

    workflow: str
    role: Role
    point: Point
    stream: int
    # whether the point is cumulative (counted as what it grew by), and the idempotency key of
    # one that adds what it holds (delta or gauge)
    cumulative: bool = field(init=False)
    claim: int | None = field(init=False)

    def __post_init__(self) -> None:
        point = self.point
        cumulative = (
            point.kind is not PointKind.GAUGE and point.temporality is Temporality.CUMULATIVE
        )
        self.cumulative = cumulative
        self.claim = None if cumulative else _delta_key(self.stream, point)


@dataclass(frozen=True, slots=True)
class Reading:
    """What the points of one export are: measures, unknown metrics, refusals."""

    measures: list[Measure]
    unknown: int
    # why each refused point was refused (in order)
    refused: list[str]

    @property
    def message(self) -> str:
        """One sentence on the refused points, naming the first reasons."""
        if not self.refused:
            return ""
        distinct = list(dict.fromkeys(self.refused))
        shown = "; ".join(distinct[:3])
        more = f" (and {len(distinct) - 3} other reasons)" if len(distinct) > 3 else ""
        return f"{len(self.refused)} data points rejected: {shown}{more}"


def _role(point: Point, names: MetricNames | None) -> Role | None:
    histogram = point.kind is PointKind.HISTOGRAM
    if point.metric in (DURATION, SERVER_DURATION):
        return Role.DURATION if histogram else None
    if point.metric == TOKEN_USAGE:
        return Role.TOKENS if histogram else None
    if names is None:
        return None
    if point.metric == names.cost and point.kind is not PointKind.GAUGE:
        return Role.COST
    if point.metric == names.confidence and point.kind is not PointKind.SUM:
        return Role.CONFIDENCE
    if point.metric == names.refusals and point.kind is PointKind.SUM:
        return Role.REFUSALS
    if point.metric == names.handoffs and point.kind is PointKind.SUM:
        return Role.HANDOFFS
    return None


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _number_problem(point: Point, role: Role) -> str | None:
    # a sum's or gauge's value (a duration is only ever a histogram)
    name = point.metric
    if point.value is None or not math.isfinite(point.value):
        return f"{name} has a value that is not a number"
    if role is Role.CONFIDENCE and not 0.0 <= point.value <= 1.0:
        return f"{name} has a confidence outside 0..1"
    if role is not Role.CONFIDENCE and point.value < 0:
        return f"{name} has a negative value"
    if point.value > (_MAX_COUNT if role in (Role.REFUSALS, Role.HANDOFFS) else _MAX_TOTAL):
        return f"{name} has a value too large to be real"
    return None


def _instant(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _epoch_ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _bounds_problem(name: str, bounds: tuple[float, ...]) -> str | None:
    if any(not math.isfinite(b) for b in bounds) or list(bounds) != sorted(set(bounds)):
        return f"{name} has bounds that are not increasing numbers"
    return None


def _histogram_problem(
    point: Point, role: Role, bounds_checked: dict[tuple[float, ...], bool]
) -> str | None:
    # a histogram's figures; its bounds are checked once per distinct bounds of the export
    name = point.metric
    buckets = point.buckets
    count = point.count
    total = point.total
    if count < 0 or (buckets and min(buckets) < 0):
        return f"{name} has a negative count"
    if count > _MAX_COUNT or (total is not None and abs(total) > _MAX_TOTAL):
        return f"{name} has a count or sum too large to be real"
    if not (_finite(total) and _finite(point.max)):
        return f"{name} has a sum or max that is not a number"
    bounds = point.bounds
    if buckets and len(buckets) != len(bounds) + 1:
        return f"{name} has {len(buckets)} buckets for {len(bounds)} bounds"
    if buckets and sum(buckets) != count:
        return f"{name} has bucket counts that do not add up to its count"
    if bounds:
        fine = bounds_checked.get(bounds)
        if fine is None:
            fine = bounds_checked[bounds] = _bounds_problem(name, bounds) is None
        if not fine:
            return f"{name} has bounds that are not increasing numbers"
    if role is not Role.CONFIDENCE and total is not None and total < 0:
        return f"{name} has a negative sum"
    if role is Role.DURATION and point.unit not in _DURATION_UNITS:
        return f"{name} has unit {point.unit!r}, not s or ms"
    return None


def read(points: Iterable[Point], mapping: WatchMapping, now: datetime) -> Reading:
    """Say what each point is; refuse those with no workflow, bad values or out of time."""
    measures: list[Measure] = []
    unknown = 0
    refused: list[str] = []
    attribute = mapping.workflow_attribute
    # what is the same for many points of one export is worked out once: a stream's key, and
    # whether a histogram's bounds are increasing numbers
    streams: dict[tuple[object, ...], int] = {}
    bounds_checked: dict[tuple[float, ...], bool] = {}
    # points well inside the admitted window need no instant of their own (the edges are
    # checked exactly, as instants)
    oldest_ns = _epoch_ns(now - mapping.keep) + _EDGE_NS
    newest_ns = _epoch_ns(now + FUTURE_SLACK) - _EDGE_NS
    for point in points:
        workflow = mapping.workflow_of(point)
        if workflow is None:
            refused.append(f"{point.metric} has no {attribute} attribute")
            continue
        if len(workflow) > WORKFLOW_CHARS:
            refused.append(
                f"{point.metric} has a {attribute} longer than {WORKFLOW_CHARS} characters"
            )
            continue
        role = _role(point, mapping.metrics.get(workflow))
        if role is None:
            unknown += 1
            continue
        if point.no_value:
            continue
        if point.kind is PointKind.HISTOGRAM:
            problem = _histogram_problem(point, role, bounds_checked)
        else:
            problem = _number_problem(point, role)
        time_ns = point.time_ns
        if problem is None and time_ns <= 0:
            problem = f"{point.metric} has no time"
        if problem is None and not 0 <= point.start_ns <= time_ns:
            problem = f"{point.metric} starts after its time"
        if problem is None and not oldest_ns < time_ns < newest_ns:
            time_problem = admission_problem(_instant(time_ns), now, mapping.keep, mapping.history)
            if time_problem is not None:
                problem = f"{point.metric} {time_problem.removeprefix('at ')}"
        if problem is not None:
            refused.append(problem)
            continue
        identity = (
            point.resource,
            point.scope,
            point.scope_version,
            point.metric,
            point.attributes,
        )
        stream = streams.get(identity)
        if stream is None:
            stream = streams[identity] = stream_key(point)
        measures.append(Measure(workflow, role, point, stream))
    return Reading(measures, unknown, refused)


# -- counting -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamState:
    """The previous cumulative point of a stream: what its next point is a delta against."""

    start_ns: int
    time_ns: int
    count: int = 0
    # a histogram's sum, or a sum's value
    total: float = 0.0
    bounds: tuple[float, ...] = ()
    buckets: tuple[int, ...] = ()
    max: float | None = None

    @classmethod
    def of(cls, point: Point) -> StreamState:
        if point.kind is PointKind.HISTOGRAM:
            return cls(
                point.start_ns,
                point.time_ns,
                point.count,
                point.total or 0.0,
                point.bounds,
                point.buckets,
                point.max,
            )
        return cls(point.start_ns, point.time_ns, total=point.value or 0.0)


def _rebucket(bounds: Sequence[float], counts: Sequence[int], onto: Sequence[float]) -> list[int]:
    # each bucket goes to the bucket of `onto` that holds its upper bound (exact when `onto` is
    # a coarser cut of `bounds`, as when an exponential histogram lowers its scale)
    moved = [0] * (len(onto) + 1)
    for index, value in enumerate(counts):
        upper = bounds[index] if index < len(bounds) else math.inf
        moved[bisect.bisect_left(onto, upper)] += value
    return moved


def _delta(point: Point, before: StreamState | None) -> Point | None:
    """Return what a cumulative point adds since `before`, as a point; None for a retry."""
    if before is None:
        return point
    if point.start_ns < before.start_ns:
        return None  # a late retry from before the stream restarted
    if point.start_ns > before.start_ns:
        return point  # the stream restarted: everything since its new start is new
    if point.time_ns <= before.time_ns:
        return None
    if point.kind is not PointKind.HISTOGRAM:
        value = point.value or 0.0
        if value < before.total:
            return point  # a reset the sender did not mark with a new start
        return replace(point, start_ns=before.time_ns, value=value - before.total)
    if point.count < before.count:
        return point
    old = (
        list(before.buckets)
        if before.bounds == point.bounds
        else _rebucket(before.bounds, before.buckets, point.bounds)
    )
    buckets: tuple[int, ...] = ()
    if point.buckets:
        if not old:
            old = [0] * len(point.buckets)
        buckets = tuple(max(now - was, 0) for now, was in zip(point.buckets, old, strict=True))
    grew = before.max is None or (point.max is not None and point.max > before.max)
    overflow = bool(buckets) and buckets[-1] > 0
    return replace(
        point,
        start_ns=before.time_ns,
        count=point.count - before.count,
        total=(point.total or 0.0) - before.total,
        buckets=buckets,
        # the interval's max is known when the running max grew in it; else the running max
        # bounds it, which is needed only to place the overflow bucket
        max=point.max if grew or overflow else None,
    )


def _add_histogram_confidences(tally: Tally, point: Point) -> None:
    if point.count == 1 and point.total is not None:
        tally.add_confidences([point.total])
        return
    counts = point.buckets or (point.count,)
    bounds = point.bounds if point.buckets else ()
    for index, value in enumerate(counts):
        if value <= 0:
            continue
        upper = (
            bounds[index] if index < len(bounds) else (point.max if point.max is not None else 1.0)
        )
        tally.confidence_buckets[bisect.bisect_left(CONFIDENCE_BOUNDS, min(upper, 1.0))] += value
    tally.confidence_count += point.count
    tally.confidence_sum += point.total or 0.0


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a point's attributes say, worked out once per distinct attribute set."""

    error: str | None
    timeout: bool
    token_kind: str
    model: str | None
    prompt: str | None

    @classmethod
    def of(cls, point: Point) -> _Facts:
        error = point.attribute(_ERROR_TYPE)
        return cls(
            error=error or None,
            timeout=bool(error) and "timeout" in (error or "").lower(),
            token_kind=(point.attribute(_TOKEN_TYPE) or "").lower(),
            model=next((v for n in _MODEL_ATTRIBUTES if (v := point.attribute(n))), None),
            prompt=next((v for n in _PROMPT_ATTRIBUTES if (v := point.attribute(n))), None),
        )


def _add(tally: Tally, role: Role, point: Point, facts: _Facts) -> bool:
    """Add what a (delta) point holds to the tally; return whether it held anything."""
    if point.kind is PointKind.HISTOGRAM:
        count = point.count
        if count <= 0:
            return False
        total = point.total or 0.0
        if role is Role.DURATION:
            scale = _DURATION_UNITS[point.unit]
            tally.runs += count
            error = facts.error
            if error:
                if facts.timeout:
                    tally.timeouts += count
                else:
                    tally.errors += count
                tally.saw_version(VersionKind.ERROR, error, point.time_ns // 1_000_000)
            if count == 1:
                # one call: its latency is exact, and it is one of the minute's recent ones
                tally.add_latencies([total * scale], at_ms=point.time_ns // 1_000_000)
            else:
                # many calls: only their histogram is known, so no recent latencies
                tally.add_latency_histogram(
                    [b * scale for b in point.bounds] if point.buckets else [],
                    point.buckets or [count],
                    total * scale,
                    None if point.max is None else point.max * scale,
                )
        elif role is Role.TOKENS:
            kind = facts.token_kind
            if kind in _INPUT_TOKENS:
                tally.tokens_in += round(total)
            elif kind in _OUTPUT_TOKENS:
                tally.tokens_out += round(total)
        elif role is Role.COST:
            tally.cost_usd += total
        elif role is Role.CONFIDENCE:
            _add_histogram_confidences(tally, point)
    else:
        value = point.value or 0.0
        if role is Role.CONFIDENCE:
            tally.add_confidences([value])
        elif value == 0:
            return False
        elif role is Role.COST:
            tally.cost_usd += value
        elif role is Role.REFUSALS:
            tally.refusals += round(value)
        elif role is Role.HANDOFFS:
            tally.handoffs += round(value)
    return True


def _note(tally: Tally, point: Point, facts: _Facts) -> None:
    at_ms = point.time_ns // 1_000_000
    tally.seen(at_ms)
    if facts.model:
        tally.saw_version(VersionKind.MODEL, facts.model, at_ms)
    if facts.prompt:
        tally.saw_version(VersionKind.PROMPT, facts.prompt, at_ms)


@dataclass(slots=True)
class Batch:
    """What an export adds: tallies by (workflow, minute), and the streams' new states."""

    tallies: dict[tuple[str, int], Tally] = field(default_factory=dict)
    states: dict[int, StreamState] = field(default_factory=dict)
    # points that added something, and points that were repeats (a retried export)
    added: int = 0
    repeats: int = 0

    def tally(self, workflow: str, minute: int) -> Tally:
        found = self.tallies.get((workflow, minute))
        if found is None:
            found = self.tallies[(workflow, minute)] = Tally()
        return found


def _time_order(measure: Measure) -> tuple[int, int]:
    return measure.point.time_ns, measure.point.start_ns


def count(
    measures: Sequence[Measure],
    states: Mapping[int, StreamState],
    claimed: Iterable[int],
) -> Batch:
    """Count measures into tallies.

    `states` holds the stored state of each cumulative stream (absent: its first point);
    `claimed` the idempotency keys of delta and gauge points not counted before. Points are
    taken in time order, so one export that holds several points of a stream counts each once.
    """
    fresh = set(claimed)
    batch = Batch()
    tallies = batch.tallies
    current = dict(states)
    known: dict[tuple[tuple[str, str], ...], _Facts] = {}
    for measure in sorted(measures, key=_time_order):
        point = measure.point
        if measure.cumulative:
            before = current.get(measure.stream)
            added = _delta(point, before)
            if added is None:
                batch.repeats += 1
                continue
            current[measure.stream] = batch.states[measure.stream] = StreamState.of(point)
        else:
            key = measure.claim
            if key not in fresh:
                batch.repeats += 1
                continue
            fresh.discard(key)
            added = point
        slot = (measure.workflow, point.time_ns // 60_000_000_000)
        tally = tallies.get(slot)
        if tally is None:
            tally = tallies[slot] = Tally()
        facts = known.get(point.attributes)
        if facts is None:
            facts = known[point.attributes] = _Facts.of(point)
        if _add(tally, measure.role, added, facts):
            _note(tally, point, facts)
            batch.added += 1
    for empty in [slot for slot, tally in batch.tallies.items() if tally.last_at_ms is None]:
        del batch.tallies[empty]
    return batch
