"""OTLP points to tallies: workflows, GenAI metrics, custom metrics, deltas and cumulative streams."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.watch.history import LATENCY_BOUNDS_MS, Tally, VersionKind, minute_of
from bot.domain.watch.otlp import (
    DURATION,
    SERVER_DURATION,
    TOKEN_USAGE,
    Batch,
    MetricNames,
    Point,
    PointKind,
    StreamState,
    Temporality,
    WatchMapping,
    count,
    read,
    stream_key,
)

NOW = datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
NS = 1_000_000_000
T = int(NOW.timestamp()) * NS
START = T - 60 * NS
ADVISED = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
MAPPING = WatchMapping(
    workflows={"support-bot": "support-bot", "support-v2": "support-bot"},
    metrics={
        "support-bot": MetricNames(
            cost="llm.cost", confidence="answer.confidence", refusals="refused", handoffs="handed"
        )
    },
)
RESOURCE = (("service.name", "support-bot"),)


def duration(
    counts: list[int],
    total: float,
    *,
    time_ns: int = T,
    start_ns: int = START,
    temporality: Temporality = Temporality.DELTA,
    attributes: tuple[tuple[str, str], ...] = (),
    max_s: float | None = None,
    unit: str = "s",
) -> Point:
    return Point(
        metric=DURATION,
        kind=PointKind.HISTOGRAM,
        unit=unit,
        temporality=temporality,
        start_ns=start_ns,
        time_ns=time_ns,
        resource=RESOURCE,
        attributes=attributes,
        count=sum(counts),
        total=total,
        bounds=ADVISED,
        # counts shorter than the bounds start at the first bucket
        buckets=tuple(counts) + (0,) * (len(ADVISED) + 1 - len(counts)),
        max=max_s,
    )


def buckets(**at: int) -> list[int]:
    """Counts over the advised bounds: b3=2 puts two calls in the bucket up to ADVISED[3]."""
    counts = [0] * (len(ADVISED) + 1)
    for name, value in at.items():
        counts[int(name[1:])] = value
    return counts


def counted(
    points: list[Point],
    states: dict[int, StreamState] | None = None,
    repeat: set[int] = frozenset(),
) -> Batch:
    reading = read(points, MAPPING, NOW)
    assert reading.refused == []
    claims = {m.claim for m in reading.measures if m.claim is not None} - set(repeat)
    return count(reading.measures, states or {}, claims)


def only(batch: Batch) -> Tally:
    assert len(batch.tallies) == 1
    return next(iter(batch.tallies.values()))


def test_a_delta_duration_histogram_counts_runs_latencies_and_failures() -> None:
    ok = duration(buckets(b3=2, b5=1), 0.05 + 0.07 + 0.3, max_s=0.3)
    failed = duration(
        buckets(b9=3), 12.0, attributes=(("error.type", "RateLimitError"),), max_s=4.5
    )
    timed_out = duration(buckets(b14=1), 95.0, attributes=(("error.type", "APITimeoutError"),))
    batch = counted([ok, failed, timed_out])
    tally = only(batch)
    assert list(batch.tallies) == [("support-bot", minute_of(NOW))]
    assert (tally.runs, tally.errors, tally.timeouts, tally.failed) == (7, 3, 1, 4)
    assert tally.latency_count == 7
    assert tally.latency_sum_ms == pytest.approx((0.42 + 12.0 + 95.0) * 1000)
    assert tally.latency_max_ms == pytest.approx(95_000)
    # the advised bounds (in ms) are bounds of the bot's own buckets: counts land exactly
    assert tally.latency_buckets[LATENCY_BOUNDS_MS.index(80.0)] == 2
    assert tally.latency_buckets[LATENCY_BOUNDS_MS.index(320.0)] == 1
    assert tally.latency_buckets[LATENCY_BOUNDS_MS.index(5120.0)] == 3
    assert {v for (k, v) in tally.versions if k is VersionKind.ERROR} == {
        "RateLimitError",
        "APITimeoutError",
    }
    assert tally.last_at_ms == T // 1_000_000
    # one call: its latency is exact, and one of the minute's recent ones (not counted twice)
    assert tally.recent == [(T // 1_000_000, pytest.approx(95_000))]


def test_a_model_server_s_request_duration_counts_like_the_client_s() -> None:
    server = replace(duration(buckets(b4=2), 0.3, max_s=0.16), metric=SERVER_DURATION)
    tally = only(counted([server]))
    assert (tally.runs, tally.latency_count, tally.latency_max_ms) == (2, 2, pytest.approx(160))


def test_many_calls_in_one_point_leave_no_recent_latencies() -> None:
    tally = only(counted([duration(buckets(b2=4), 0.12)]))
    assert tally.latency_count == 4 and tally.recent == []


def test_milliseconds_are_accepted_and_other_units_refused() -> None:
    point = duration([1], 250.0, unit="ms")
    tally = only(counted([replace(point, bounds=(), buckets=(), max=250.0)]))
    assert tally.latency_sum_ms == 250.0 and tally.latency_max_ms == 250.0
    reading = read([replace(point, unit="min")], MAPPING, NOW)
    assert reading.measures == [] and "not s or ms" in reading.refused[0]


def test_token_usage_models_and_prompt_versions() -> None:
    attrs = (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "gpt-4o"),
        ("gen_ai.response.model", "gpt-4o-2024-08-06"),
        ("prompt_version", "v7"),
    )

    def tokens(kind: str, total: float) -> Point:
        return Point(
            metric=TOKEN_USAGE,
            kind=PointKind.HISTOGRAM,
            unit="{token}",
            temporality=Temporality.DELTA,
            start_ns=START,
            time_ns=T,
            resource=RESOURCE,
            attributes=(*attrs, ("gen_ai.token.type", kind)),
            count=2,
            total=total,
        )

    tally = only(counted([tokens("input", 1200), tokens("output", 340)]))
    assert (tally.tokens_in, tally.tokens_out, tally.runs) == (1200, 340, 0)
    assert set(tally.versions) == {
        (VersionKind.MODEL, "gpt-4o-2024-08-06"),
        (VersionKind.PROMPT, "v7"),
    }
    only_request = only(
        counted([replace(tokens("input", 5), attributes=(("gen_ai.request.model", "m"),))])
    )
    # without a token type the point counts nothing, but the model was still seen
    assert only_request.tokens_in == 0 and (VersionKind.MODEL, "m") in only_request.versions


def test_custom_metrics_of_a_workflow_known_by_its_alias() -> None:
    resource = (("service.name", "support-v2"),)
    base = Point(
        metric="llm.cost",
        kind=PointKind.SUM,
        temporality=Temporality.DELTA,
        monotonic=True,
        start_ns=START,
        time_ns=T,
        resource=resource,
        value=0.25,
    )
    points = [
        base,
        replace(base, metric="refused", value=2),
        replace(base, metric="handed", value=1),
        replace(base, metric="answer.confidence", kind=PointKind.GAUGE, value=0.93),
        replace(
            base,
            metric="answer.confidence",
            kind=PointKind.HISTOGRAM,
            attributes=(("k", "hist"),),
            value=None,
            count=3,
            total=1.5,
            bounds=(0.25, 0.5, 0.75),
            buckets=(1, 1, 1, 0),
        ),
        replace(
            base,
            metric="llm.cost",
            kind=PointKind.HISTOGRAM,
            attributes=(("k", "hist"),),
            value=None,
            count=2,
            total=0.5,
        ),
    ]
    batch = counted(points)
    assert list(batch.tallies) == [("support-bot", minute_of(NOW))]
    tally = only(batch)
    assert tally.cost_usd == pytest.approx(0.75)
    assert (tally.refusals, tally.handoffs) == (2, 1)
    assert tally.confidence_count == 4
    assert tally.confidence_sum == pytest.approx(2.43)
    # 0.25 -> (0.2, 0.3], 0.5 -> (0.4, 0.5], 0.75 -> (0.7, 0.8], 0.93 -> the last bucket
    assert tally.confidence_buckets == [0, 0, 1, 0, 1, 0, 0, 1, 0, 1]


def test_the_workflow_attribute_is_read_on_the_point_first_then_the_resource() -> None:
    point = duration([1], 0.1)
    on_point = replace(point, attributes=(("service.name", "billing"),))
    assert [m.workflow for m in read([point, on_point], MAPPING, NOW).measures] == [
        "support-bot",
        "billing",
    ]
    mapping = WatchMapping(workflow_attribute="app", workflows={"x": "billing"})
    by_app = replace(point, resource=(("app", "x"),))
    assert [m.workflow for m in read([by_app], mapping, NOW).measures] == ["billing"]


def test_refusals_unknown_metrics_and_points_out_of_time() -> None:
    good = duration([1], 0.1)
    minute = 60 * NS
    points = [
        replace(good, resource=()),
        replace(good, time_ns=T - 36 * 24 * 60 * minute, start_ns=0),
        replace(good, time_ns=T + 6 * minute),
        replace(good, total=math.nan),
        replace(good, buckets=(1, 0)),
        replace(good, count=-1),
        replace(good, start_ns=T + 1),
        replace(good, metric="http.server.duration"),
        replace(good, metric="llm.cost", kind=PointKind.SUM, value=-1.0, buckets=(), bounds=()),
        replace(good, kind=PointKind.SUMMARY),
        good,
    ]
    reading = read(points, MAPPING, NOW)
    assert len(reading.measures) == 1
    assert reading.unknown == 2  # a metric not watched, and a duration summary
    assert len(reading.refused) == 8
    assert "no service.name attribute" in reading.refused[0]
    assert "older than the 35-day history" in reading.refused[1]
    assert "more than 5 minutes in the future" in reading.refused[2]
    assert reading.message.startswith("8 data points rejected: ")


def test_a_delta_point_counts_once() -> None:
    point = duration([1], 0.2)
    reading = read([point, point], MAPPING, NOW)
    claims = {m.claim for m in reading.measures}
    assert len(claims) == 1
    once = count(reading.measures, {}, claims)
    assert only(once).runs == 1 and once.repeats == 1
    # a retried export: its key was claimed before, so nothing is added
    again = count(reading.measures, {}, set())
    assert again.tallies == {} and again.repeats == 2


def test_cumulative_points_add_what_they_grew_by() -> None:
    first = duration(
        buckets(b2=2), 0.06, temporality=Temporality.CUMULATIVE, max_s=0.035, time_ns=T - 30 * NS
    )
    key = stream_key(first)
    batch = counted([first])
    assert only(batch).runs == 2
    state = batch.states[key]
    assert (state.count, state.start_ns, state.time_ns) == (2, START, T - 30 * NS)

    second = duration(
        buckets(b2=2, b6=1), 0.56, temporality=Temporality.CUMULATIVE, max_s=0.5, time_ns=T
    )
    grown = only(counted([second], {key: state}))
    assert (grown.runs, grown.latency_count) == (1, 1)
    assert grown.latency_sum_ms == pytest.approx(500)
    assert grown.latency_max_ms == pytest.approx(500)
    # one call since the previous point: its latency is exact
    assert [lat for _, lat in grown.recent] == [pytest.approx(500)]

    # the same point again (a retry) adds nothing; so does an older one
    assert counted([second], {key: StreamState.of(second)}).tallies == {}
    assert counted([first], {key: StreamState.of(second)}).tallies == {}


def test_a_restarted_or_decreasing_stream_is_a_reset() -> None:
    before = StreamState(
        START, T - 30 * NS, count=10, total=5.0, bounds=ADVISED, buckets=tuple(buckets(b4=10))
    )
    restarted = duration(
        buckets(b2=3), 0.09, temporality=Temporality.CUMULATIVE, start_ns=T - 10 * NS
    )
    key = stream_key(restarted)
    assert only(counted([restarted], {key: before})).runs == 3
    decreased = replace(restarted, start_ns=START)
    assert only(counted([decreased], {key: before})).runs == 3
    # a late point from before the restart adds nothing
    late = replace(restarted, start_ns=START - NS)
    assert counted([late], {key: before}).tallies == {}


def test_a_cumulative_sum_and_several_points_of_one_stream_in_one_export() -> None:
    sums = [
        Point(
            metric="refused",
            kind=PointKind.SUM,
            temporality=Temporality.CUMULATIVE,
            monotonic=True,
            start_ns=START,
            time_ns=T - offset * NS,
            resource=RESOURCE,
            value=value,
        )
        for offset, value in ((20, 4), (0, 9), (10, 6))
    ]
    batch = counted(sums)
    assert only(batch).refusals == 9
    assert batch.states[stream_key(sums[0])].total == 9
    # nothing new since: the stream moves on, no tally is written
    later = replace(sums[1], time_ns=T + NS)
    again = counted([later], {stream_key(later): StreamState.of(sums[1])})
    assert again.tallies == {} and stream_key(later) in again.states


def test_a_cumulative_histogram_whose_bounds_got_coarser() -> None:
    fine = (0.01, 0.02, 0.04, 0.08)
    before = StreamState(
        START, T - 30 * NS, count=4, total=0.1, bounds=fine, buckets=(1, 1, 1, 1, 0)
    )
    coarse = Point(
        metric=DURATION,
        kind=PointKind.HISTOGRAM,
        unit="s",
        temporality=Temporality.CUMULATIVE,
        start_ns=START,
        time_ns=T,
        resource=RESOURCE,
        count=6,
        total=0.3,
        bounds=(0.02, 0.08),
        buckets=(2, 4, 0),
    )
    tally = only(counted([coarse], {stream_key(coarse): before}))
    assert tally.runs == 2
    # the old buckets fold into the coarse ones: both new calls are in (0.02, 0.08]
    assert tally.latency_buckets[LATENCY_BOUNDS_MS.index(80.0)] == 2
    assert sum(tally.latency_buckets) == 2


def test_a_point_marked_without_a_value_counts_nothing() -> None:
    reading = read([replace(duration([1], 0.1), no_value=True)], MAPPING, NOW)
    assert reading.measures == [] and reading.refused == [] and reading.unknown == 0


def test_the_stream_key_ignores_attribute_order_and_counts_the_scope() -> None:
    a = replace(duration([1], 0.1), attributes=(("a", "1"), ("b", "2")))
    b = replace(a, attributes=(("b", "2"), ("a", "1")))
    assert stream_key(a) == stream_key(b)
    assert stream_key(a) != stream_key(replace(a, scope="other"))
    assert stream_key(a) == stream_key(replace(a, time_ns=T + 1))


def test_points_count_in_the_minute_of_their_time() -> None:
    earlier = duration([1], 0.1, time_ns=T - 90 * NS, start_ns=T - 100 * NS)
    batch = counted([earlier, duration([1], 0.2)])
    assert sorted(batch.tallies) == [
        ("support-bot", minute_of(NOW - timedelta(seconds=90))),
        ("support-bot", minute_of(NOW)),
    ]


def _bucket_counts(values: list[float]) -> list[int]:
    counts = [0] * (len(ADVISED) + 1)
    for value in values:
        counts[sum(1 for bound in ADVISED if bound < value)] += 1
    return counts


@given(
    batches=st.lists(st.lists(st.floats(0.001, 120.0), max_size=4), min_size=1, max_size=6),
    retried=st.lists(st.booleans(), min_size=7, max_size=7),
    cumulative=st.booleans(),
)
def test_any_run_of_exports_and_retries_counts_every_call_once(
    batches: list[list[float]], retried: list[bool], cumulative: bool
) -> None:
    exports: list[Point] = []
    everything: list[float] = []
    previous = START
    for index, batch in enumerate(batches):
        everything += batch
        sent = everything if cumulative else batch
        time_ns = START + (index + 1) * NS
        exports.append(
            duration(
                _bucket_counts(sent),
                sum(sent),
                start_ns=START if cumulative else previous,
                time_ns=time_ns,
                temporality=Temporality.CUMULATIVE if cumulative else Temporality.DELTA,
                max_s=max(sent, default=None),
            )
        )
        previous = time_ns
    requests: list[list[Point]] = []
    for index, point in enumerate(exports):
        requests.append([point])
        if retried[index]:
            requests.append([point])  # the answer was lost: the exporter sends it again
    if retried[-1]:
        requests.append(exports[:2])  # a late retry of the first exports
    seen: set[int] = set()
    states: dict[int, StreamState] = {}
    total = Tally()
    for request in requests:
        reading = read(request, MAPPING, NOW)
        assert reading.refused == []
        keys = {m.claim for m in reading.measures if m.claim is not None}
        batch = count(reading.measures, states, keys - seen)
        seen |= keys
        states.update(batch.states)
        for tally in batch.tallies.values():
            total.merge(tally)
    assert total.runs == total.latency_count == len(everything)
    assert sum(total.latency_buckets) == len(everything)
    assert total.latency_sum_ms == pytest.approx(sum(everything) * 1000)
    if everything:
        assert total.latency_max_ms == pytest.approx(max(everything) * 1000)


@pytest.mark.parametrize(
    ("offset", "kept"),
    [
        (-timedelta(days=35) + timedelta(microseconds=1), True),
        (-timedelta(days=35) - timedelta(microseconds=1), False),
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, microseconds=1), False),
        (-timedelta(days=34, hours=23), True),
        (timedelta(minutes=4, seconds=59), True),
    ],
)
def test_a_point_is_admitted_up_to_the_exact_edges_of_the_kept_window(
    offset: timedelta, kept: bool
) -> None:
    at = NOW + offset
    time_ns = int(at.timestamp()) * NS + at.microsecond * 1000
    reading = read([duration([1], 0.2, time_ns=time_ns, start_ns=0)], MAPPING, NOW)
    assert (len(reading.measures), len(reading.refused)) == ((1, 0) if kept else (0, 1))


def test_points_that_share_attributes_count_as_the_same_points_one_by_one() -> None:
    error = (("error.type", "APITimeoutError"), ("gen_ai.request.model", "m-1"))
    shared = [duration([1], 0.1 * (i + 1), time_ns=T + i, attributes=error) for i in range(3)]
    copies = [replace(p, attributes=tuple(list(p.attributes))) for p in shared]
    together = only(counted(shared))
    apart = [only(counted([p])) for p in copies]
    assert (together.runs, together.timeouts) == (3, 3)
    assert together.versions[(VersionKind.MODEL, "m-1")] == (T // 10**6, (T + 2) // 10**6)
    merged = Tally()
    for tally in apart:
        merged.merge(tally)
    assert (merged.runs, merged.timeouts, merged.latency_sum_ms) == (
        together.runs,
        together.timeouts,
        together.latency_sum_ms,
    )
    assert {m.stream for m in read(shared, MAPPING, NOW).measures} == {stream_key(shared[0])}
