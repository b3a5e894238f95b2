"""POST /v1/metrics as OTLP/HTTP specifies it: encodings, partial success, refusals, hostile bodies."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from sqlmodel import Session

from bot.domain.watch.history import Tally, VersionKind
from storage import watch
from tests.conftest import AUTH, Bot, make_bot
from tests.support.databases import database

NS = 1_000_000_000
PROTOBUF = {**AUTH, "Content-Type": "application/x-protobuf"}
JSON = {**AUTH, "Content-Type": "application/json"}
ADVISED = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    # the edge is the subject here, not the database: SQLite only
    with database("sqlite", tmp_path) as url:
        b = make_bot(url)
        with b.client:
            yield b
        b.container.engine.dispose()


def attrs(**values: Any) -> list[KeyValue]:
    out = []
    for key, value in values.items():
        any_value = (
            AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
        )
        out.append(KeyValue(key=key.replace("__", "."), value=any_value))
    return out


def export(
    bot: Bot, *, service: str | None = "support-bot", offset_s: int = 0, failed: int = 0
) -> ExportMetricsServiceRequest:
    """A delta export of 3 calls (one failed when `failed`), with their token usage."""
    now = int(bot.clock().timestamp()) * NS + offset_s * NS
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    if service is not None:
        resource_metrics.resource.attributes.extend(attrs(service__name=service))
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "openai-instrumentation"
    duration = scope.metrics.add(name="gen_ai.client.operation.duration", unit="s")
    duration.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    model = {"gen_ai__response__model": "gpt-4o-mini", "gen_ai__operation__name": "chat"}
    point = duration.histogram.data_points.add(
        start_time_unix_nano=now - 10 * NS,
        time_unix_nano=now,
        count=3,
        sum=0.9,
        explicit_bounds=ADVISED,
        bucket_counts=[0, 0, 0, 0, 1, 2] + [0] * 9,
        max=0.5,
    )
    point.attributes.extend(attrs(**model))
    if failed:
        bad = duration.histogram.data_points.add(
            start_time_unix_nano=now - 10 * NS, time_unix_nano=now, count=1, sum=2.0, max=2.0
        )
        bad.attributes.extend(attrs(**model, error__type="InternalServerError"))
    tokens = scope.metrics.add(name="gen_ai.client.token.usage", unit="{token}")
    tokens.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    for kind, total in (("input", 900), ("output", 150)):
        p = tokens.histogram.data_points.add(
            start_time_unix_nano=now - 10 * NS, time_unix_nano=now, count=3, sum=total
        )
        p.attributes.extend(attrs(**model, gen_ai__token__type=kind))
    other = scope.metrics.add(name="http.client.request.duration", unit="s")
    other.gauge.data_points.add(time_unix_nano=now, as_double=0.2)
    return request


def stored(bot: Bot) -> dict[str, Tally]:
    with Session(bot.container.engine) as session:
        return {s.workflow: s.tally for s in watch.slots(session, since=0, until=2**31 - 1)}


def status_of(r: Any) -> status_pb2.Status:
    status = status_pb2.Status()
    status.ParseFromString(r.content)
    return status


def test_a_protobuf_export_is_kept_and_answered_in_protobuf(bot: Bot) -> None:
    r = bot.client.post(
        "/v1/metrics", content=export(bot, failed=1).SerializeToString(), headers=PROTOBUF
    )
    assert r.status_code == 200, r.content
    assert r.headers["content-type"] == "application/x-protobuf"
    answer = ExportMetricsServiceResponse()
    answer.ParseFromString(r.content)
    assert not answer.HasField("partial_success")
    tally = stored(bot)["support-bot"]
    assert (tally.runs, tally.errors, tally.tokens_in, tally.tokens_out) == (4, 1, 900, 150)
    assert tally.latency_count == 4 and tally.latency_sum_ms == pytest.approx(2900)
    assert tally.latency_max_ms == pytest.approx(2000)
    with Session(bot.container.engine) as session:
        models = {v.value for v in watch.versions(session, kinds=[VersionKind.MODEL])}
    assert models == {"gpt-4o-mini"}
    metrics = bot.client.get("/metrics").text
    assert 'ai_incident_otlp_points_total{outcome="kept"} 4.0' in metrics
    assert 'ai_incident_otlp_points_total{outcome="unknown_metric"} 1.0' in metrics
    assert 'ai_incident_webhook_requests_total{endpoint="otlp_metrics",status="200"} 1.0' in metrics

    # the exporter retries the same export: nothing is counted twice
    again = bot.client.post(
        "/v1/metrics", content=export(bot, failed=1).SerializeToString(), headers=PROTOBUF
    )
    assert again.status_code == 200
    assert stored(bot)["support-bot"].runs == 4


def test_an_otlp_json_export_is_kept_and_answered_in_json(bot: Bot) -> None:
    body = json_format.MessageToJson(export(bot), use_integers_for_enums=True)
    assert '"timeUnixNano": "' in body  # int64 as strings, lowerCamelCase
    r = bot.client.post("/v1/metrics", content=body, headers=JSON)
    assert r.status_code == 200 and r.json() == {}
    assert stored(bot)["support-bot"].runs == 3
    # int64 as numbers and unknown fields are read too
    loose = json.loads(
        json_format.MessageToJson(export(bot, offset_s=30), use_integers_for_enums=True)
    )
    point = loose["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["histogram"]["dataPoints"][
        0
    ]
    point["timeUnixNano"] = int(point["timeUnixNano"])
    point["newField"] = {"from": "a later OTLP"}
    r = bot.client.post("/v1/metrics", json=loose, headers=JSON)
    assert r.status_code == 200, r.text
    assert stored(bot)["support-bot"].runs == 6


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_read(bot: Bot, encoding: str) -> None:
    raw = export(bot).SerializeToString()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    r = bot.client.post(
        "/v1/metrics", content=body, headers={**PROTOBUF, "Content-Encoding": encoding}
    )
    assert r.status_code == 200, r.content
    assert stored(bot)["support-bot"].runs == 3


def test_rejected_points_are_a_partial_success(bot: Bot) -> None:
    request = export(bot)
    request.resource_metrics.extend(export(bot, service=None).resource_metrics)
    r = bot.client.post("/v1/metrics", content=request.SerializeToString(), headers=PROTOBUF)
    assert r.status_code == 200
    answer = ExportMetricsServiceResponse()
    answer.ParseFromString(r.content)
    assert answer.partial_success.rejected_data_points == 4
    assert "no service.name attribute" in answer.partial_success.error_message
    assert stored(bot)["support-bot"].runs == 3

    body = json_format.MessageToJson(export(bot, service=None), use_integers_for_enums=True)
    r = bot.client.post("/v1/metrics", content=body, headers=JSON)
    assert r.json()["partialSuccess"]["rejectedDataPoints"] == "4"


def test_refusals_answer_a_status_in_the_request_encoding(bot: Bot) -> None:
    body = export(bot).SerializeToString()
    r = bot.client.post(
        "/v1/metrics", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 401 and status_of(r).code == code_pb2.UNAUTHENTICATED
    assert r.headers["www-authenticate"] == "Bearer"

    r = bot.client.post("/v1/metrics", content=body[:-7], headers=PROTOBUF)
    assert r.status_code == 400 and status_of(r).code == code_pb2.INVALID_ARGUMENT
    assert "not an ExportMetricsServiceRequest" in status_of(r).message

    r = bot.client.post("/v1/metrics", content="[" * 5000 + "]" * 5000, headers=JSON)
    assert r.status_code == 400
    assert r.json()["code"] == code_pb2.INVALID_ARGUMENT and "nested deeper" in r.json()["message"]

    r = bot.client.post("/v1/metrics", content=b'{"resourceMetrics": 7}', headers=JSON)
    assert r.status_code == 400 and "not OTLP JSON" in r.json()["message"]

    r = bot.client.post("/v1/metrics", content=body, headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/plain" in status_of(r).message

    r = bot.client.post("/v1/metrics", content=body, headers={**PROTOBUF, "Content-Encoding": "br"})
    assert r.status_code == 415

    r = bot.client.post(
        "/v1/metrics", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 400 and "not valid gzip" in status_of(r).message
    r = bot.client.post(
        "/v1/metrics",
        content=gzip.compress(body)[:-12],
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert r.status_code == 400 and "truncated" in status_of(r).message
    assert stored(bot) == {}


def test_bodies_over_the_limit_compressed_or_not_are_413(bot: Bot) -> None:
    limit = bot.container.settings.max_body_bytes
    r = bot.client.post("/v1/metrics", content=b"\x00" * (limit + 1), headers=PROTOBUF)
    assert r.status_code == 413 and status_of(r).code == code_pb2.RESOURCE_EXHAUSTED
    # a gzip bomb: a few kilobytes that would inflate to a gigabyte are refused early
    bomb = gzip.compress(b"\x00" * (64 * limit), compresslevel=9)
    assert len(bomb) < limit
    r = bot.client.post(
        "/v1/metrics", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 413
    r = bot.client.post("/v1/metrics", content=bomb, headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and r.json()["code"] == code_pb2.RESOURCE_EXHAUSTED


def test_storage_down_is_503_with_retry_after(bot: Bot, tmp_path: Path) -> None:
    broken = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
    bot.container.pipeline._engine = broken
    try:
        r = bot.client.post(
            "/v1/metrics", content=export(bot).SerializeToString(), headers=PROTOBUF
        )
        assert r.status_code == 503
        assert status_of(r).code == code_pb2.UNAVAILABLE and r.headers["retry-after"].isdigit()
        assert "storage unavailable" in status_of(r).message
    finally:
        bot.container.pipeline._engine = bot.container.engine
        broken.dispose()
    # the exporter retries: now it is kept
    r = bot.client.post("/v1/metrics", content=export(bot).SerializeToString(), headers=PROTOBUF)
    assert r.status_code == 200 and stored(bot)["support-bot"].runs == 3


def test_an_exponential_histogram_counts_its_calls(bot: Bot) -> None:
    now = int(bot.clock().timestamp()) * NS
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(attrs(service__name="support-bot"))
    metric = rm.scope_metrics.add().metrics.add(name="gen_ai.client.operation.duration", unit="ms")
    metric.exponential_histogram.aggregation_temporality = (
        metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    )
    point = metric.exponential_histogram.data_points.add(
        start_time_unix_nano=now - 60 * NS,
        time_unix_nano=now,
        count=5,
        sum=700.0,
        scale=0,
        zero_count=1,
        max=400.0,
    )
    # scale 0: bucket i of offset 6 holds (2**(6+i), 2**(7+i)] ms
    point.positive.offset = 6
    point.positive.bucket_counts.extend([2, 1, 1])
    r = bot.client.post("/v1/metrics", content=request.SerializeToString(), headers=PROTOBUF)
    assert r.status_code == 200
    tally = stored(bot)["support-bot"]
    assert (tally.runs, tally.latency_count, tally.latency_max_ms) == (5, 5, 400.0)
    assert tally.last_at_ms == now // 1_000_000
    assert sum(tally.latency_buckets) == 5


@pytest.mark.both_backends
def test_hostile_text_and_figures_never_fail_the_export(db_url: str) -> None:
    b = make_bot(db_url)
    with b.client:
        body = json_format.MessageToJson(export(b), use_integers_for_enums=True)
        # a lone surrogate is not text: refused, in OTLP form
        surrogate = body.replace('"support-bot"', '"support\\ud800"')
        r = b.client.post("/v1/metrics", content=surrogate, headers=JSON)
        assert r.status_code == 400 and "surrogate" in r.json()["message"]
        hostile = body.replace('"support-bot"', '"sup\\u0000port"').replace(
            '"gpt-4o-mini"', '"gpt\\u0000' + "m" * 300 + '"'
        )
        r = b.client.post("/v1/metrics", content=hostile, headers=JSON)
        assert r.status_code == 200, r.text
        assert set(stored(b)) == {"sup\ufffdport"}
        with Session(b.container.engine) as session:
            (model,) = {v.value for v in watch.versions(session, kinds=[VersionKind.MODEL])}
        assert model.startswith("gpt\ufffdmmm") and len(model) == 200

        too_long = body.replace('"support-bot"', '"' + "w" * 201 + '"')
        huge = export(b, service="huge")
        huge.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0].count = 2**63
        for request in (too_long, json_format.MessageToJson(huge, use_integers_for_enums=True)):
            r = b.client.post("/v1/metrics", content=request, headers=JSON)
            assert r.status_code == 200, r.text
            assert int(r.json()["partialSuccess"]["rejectedDataPoints"]) >= 1
        assert set(stored(b)) == {"sup\ufffdport", "huge"}
    b.container.engine.dispose()
