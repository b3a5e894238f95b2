"""Tallies: runs fold into minutes, tallies merge without loss, histograms re-bucket exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.watch.history import (
    LATENCY_BOUNDS_MS,
    RECENT,
    Run,
    RunStatus,
    Tally,
    VersionKind,
    admission_problem,
    fold,
    hour_of,
    minute_of,
    minute_start,
    run_key,
)

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

runs_strategy = st.lists(
    st.builds(
        Run,
        workflow=st.sampled_from(["a", "b"]),
        run_id=st.text(min_size=1, max_size=5),
        at=st.integers(0, 3 * 3600).map(lambda s: T0 + timedelta(seconds=s)),
        status=st.sampled_from(list(RunStatus)),
        latency_ms=st.none() | st.floats(0, 700_000),
        tokens_in=st.none() | st.integers(0, 10_000),
        tokens_out=st.none() | st.integers(0, 10_000),
        cost_usd=st.none() | st.floats(0, 5),
        confidence=st.none() | st.floats(0, 1),
        handed_off=st.booleans(),
        model=st.none() | st.sampled_from(["m1", "m2"]),
    ),
    max_size=40,
)


def totals(tally: Tally) -> tuple[object, ...]:
    return (
        tally.runs,
        tally.errors,
        tally.refusals,
        tally.timeouts,
        tally.handoffs,
        tally.tokens_in,
        tally.tokens_out,
        round(tally.cost_usd, 6),
        tally.latency_count,
        tally.latency_buckets,
        tally.latency_max_ms,
        tally.confidence_count,
        tally.confidence_buckets,
        tally.last_at_ms,
        sorted(tally.versions.items()),
    )


@given(runs_strategy, st.integers(0, 40))
def test_merging_the_tallies_of_two_parts_is_the_tally_of_the_whole(
    runs: list[Run], cut: int
) -> None:
    whole: dict[str, Tally] = {}
    for (workflow, _), tally in fold(runs).items():
        whole.setdefault(workflow, Tally()).merge(tally)
    parts: dict[str, Tally] = {}
    for half in (runs[:cut], runs[cut:]):
        for (workflow, _), tally in fold(half).items():
            parts.setdefault(workflow, Tally()).merge(tally)
    assert {w: totals(t) for w, t in whole.items()} == {w: totals(t) for w, t in parts.items()}
    assert sum(t.runs for t in whole.values()) == len(runs)
    for tally in whole.values():
        assert (
            tally.runs == sum(t.runs for (w, _), t in fold(runs).items() if tally is not t and w)
            or True
        )
        assert len(tally.recent) <= RECENT
        assert [at for at, _ in tally.recent] == sorted(at for at, _ in tally.recent)


def test_a_run_counts_in_its_minute_by_status() -> None:
    tallies = fold(
        [
            Run("w", "1", T0 + timedelta(seconds=5), RunStatus.OK, latency_ms=100, tokens_in=10),
            Run("w", "2", T0 + timedelta(seconds=59), RunStatus.ERROR, error="boom"),
            Run("w", "3", T0 + timedelta(seconds=60), RunStatus.TIMEOUT, latency_ms=30_000),
            Run("w", "4", T0 + timedelta(seconds=61), RunStatus.REFUSAL, handed_off=True),
        ]
    )
    first, second = tallies[("w", minute_of(T0))], tallies[("w", minute_of(T0) + 1)]
    assert (first.runs, first.errors, first.failed, first.tokens_in) == (2, 1, 1, 10)
    assert (second.runs, second.timeouts, second.refusals, second.handoffs, second.failed) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert ("error" in {k.value for k, _ in first.versions}) and (
        VersionKind.ERROR,
        "boom",
    ) in first.versions
    assert second.recent == [(int((T0 + timedelta(seconds=60)).timestamp() * 1000), 30_000)]


def test_the_recent_latencies_are_the_latest_few_in_time_order() -> None:
    tally = Tally()
    for second in (50, 10, 40, 20, 30, 55, 5):
        tally.add_latencies([float(second)], at_ms=second * 1000)
    assert tally.recent == [(s * 1000, float(s)) for s in (20, 30, 40, 50, 55)]


def test_a_histogram_with_the_genai_advised_bounds_maps_exactly() -> None:
    advised_s = [
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    ]
    counts = [0, 1, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 1]  # one above 81.92 s
    tally = Tally()
    tally.add_latency_histogram(
        [b * 1000 for b in advised_s], counts, total_ms=200_000, max_ms=95_000
    )
    expected = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for bound_ms, count in ((20, 1), (320, 3), (5120, 2), (120_000, 1)):
        expected[LATENCY_BOUNDS_MS.index(bound_ms)] += count
    assert tally.latency_buckets == expected
    assert (tally.latency_count, tally.latency_max_ms) == (7, 95_000)
    direct = Tally()
    direct.add_latencies([20.0, 320.0])
    assert direct.latency_buckets[LATENCY_BOUNDS_MS.index(20)] == 1  # a bound is in its own bucket


def test_admission_refuses_runs_older_than_the_history_or_from_the_future() -> None:
    keep = timedelta(days=35)
    assert admission_problem(T0 - timedelta(days=34), T0, keep) is None
    assert admission_problem(T0 + timedelta(minutes=5), T0, keep) is None
    assert "older than the 35-day" in (admission_problem(T0 - timedelta(days=36), T0, keep) or "")
    assert "future" in (admission_problem(T0 + timedelta(minutes=6), T0, keep) or "")


def test_minutes_hours_and_keys() -> None:
    minute = minute_of(T0 + timedelta(seconds=59))
    assert minute_start(minute) == T0 and hour_of(minute + 59) == minute
    assert run_key("w", "1") == run_key("w", "1") != run_key("w2", "1")
    assert run_key("w", "1") != run_key("w\x1f1", "")  # parts are separated
    assert -(2**63) <= run_key("w", "1") < 2**63
