"""The watch benchmark's traffic: its bodies are valid runs and valid OTLP, none a repeat."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from handlers.runs import RunsIn

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_watch", ROOT / "bench" / "watch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_a_runs_body_is_500_valid_runs_of_20_workflows_with_fresh_ids() -> None:
    template = bench.RunsTemplate.build(bench.draw_runs(500, seed=13))
    first = RunsIn.model_validate_json(template.render(bench.uid_base(0, 0), 1_800_000_000.25))
    second = RunsIn.model_validate_json(template.render(bench.uid_base(0, 1), 1_800_000_001.0))

    assert len(first.runs) == 500
    assert len({r.workflow for r in first.runs}) == 20
    ids = {r.run_id for r in first.runs} | {r.run_id for r in second.runs}
    assert len(ids) == 1000
    assert {r.at.isoformat() for r in first.runs} == {"2027-01-15T08:00:00.250000+00:00"}
    statuses = {r.status.value for r in first.runs}
    assert {"ok", "error"} <= statuses
    assert all(r.latency_ms and r.tokens_in and r.model and r.prompt_version for r in first.runs)
    assert all(
        (r.error is not None) == (r.status.value in ("error", "timeout")) for r in first.runs
    )


def test_an_otlp_body_holds_500_runs_of_delta_points_at_the_time_of_sending() -> None:
    svc = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
    template = bench.OtlpTemplate.build(bench.draw_runs(500, seed=13))
    now_ns = 1_800_000_000 * 10**9
    export = svc.ExportMetricsServiceRequest.FromString(template.render(now_ns))

    workflows = set()
    durations = []
    tokens = []
    for rm in export.resource_metrics:
        (name,) = [a.value.string_value for a in rm.resource.attributes if a.key == "service.name"]
        workflows.add(name)
        for metric in rm.scope_metrics[0].metrics:
            points = list(metric.histogram.data_points)
            assert metric.histogram.aggregation_temporality == 1  # DELTA
            if metric.name == "gen_ai.client.operation.duration":
                assert metric.unit == "s"
                durations.extend(points)
            else:
                assert metric.name == "gen_ai.client.token.usage"
                tokens.extend(points)
    assert len(workflows) == 20
    assert sum(p.count for p in durations) == 500
    assert len(tokens) == 1000
    times = {p.time_unix_nano for p in durations}
    assert len(times) == 500
    assert now_ns - 10**9 < min(times) and max(times) < now_ns
    assert all(p.time_unix_nano - p.start_time_unix_nano == 1_000_000 for p in durations + tokens)


def test_an_aggregated_otlp_body_holds_the_same_500_runs_in_few_points() -> None:
    svc = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
    runs = bench.draw_runs(500, seed=13)
    template = bench.OtlpTemplate.build(runs, aggregated=True)
    export = svc.ExportMetricsServiceRequest.FromString(template.render(1_800_000_000 * 10**9))
    points = {
        metric.name: list(metric.histogram.data_points)
        for rm in export.resource_metrics[:1]
        for metric in rm.scope_metrics[0].metrics
    }
    durations = [
        p
        for rm in export.resource_metrics
        for m in rm.scope_metrics[0].metrics
        if m.name == "gen_ai.client.operation.duration"
        for p in m.histogram.data_points
    ]
    assert sum(p.count for p in durations) == 500
    assert sum(p.count for p in durations if any(a.key == "error.type" for a in p.attributes)) == (
        sum(r.status in ("error", "timeout") for r in runs)
    )
    assert len(durations) < 100 and len(points["gen_ai.client.token.usage"]) >= 2
    assert len({p.time_unix_nano for p in durations}) == len(durations)
