"""The real OpenTelemetry Python SDK exports GenAI metrics to the bot's /v1/metrics.

The SDK's own OTLP/HTTP exporter (protobuf, cumulative by default, delta when asked) talks to
a bot served on loopback; what the bot stores must be what was recorded. The OTLP JSON
encoding is the SDK's collected data through its own encoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from sqlmodel import Session

from bot.domain.watch.history import Tally, VersionKind
from bot.domain.watch.policy import WatchMetrics, WorkflowWatch
from handlers.http import create_app
from storage import watch
from tests.conftest import AUTH, TOKEN, Bot, FakeClock, example_policy, make_bot
from tests.support.databases import database
from tests.support.live import serving

pytestmark = pytest.mark.slow

ADVISED = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}


CUSTOM = WatchMetrics(
    cost="app.llm.cost",
    confidence="app.answer.confidence",
    refusals="app.refusals",
    handoffs="app.handoffs",
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Bot, str]]:
    policy = example_policy()
    support = policy.workflows["support-chatbot"].model_copy(
        update={"watch": WorkflowWatch(alias=["support-prod"], metrics=CUSTOM)}
    )
    policy = policy.model_copy(
        update={"workflows": {**policy.workflows, "support-chatbot": support}}
    )
    # the SDK stamps points with the real time: the bot's clock reads it too (it never waits)
    with database("sqlite", tmp_path) as url:
        bot = make_bot(url, policy=policy, clock=FakeClock(datetime.now(UTC)))
        with serving(create_app(bot.container)) as served:
            yield bot, served
        bot.container.engine.dispose()


class Workflow:
    """A workflow instrumented with the GenAI client metrics, and what it recorded."""

    def __init__(self, service: str, reader: MetricReader) -> None:
        self.provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": service})
        )
        meter = self.provider.get_meter("genai-instrumentation", "1.0")
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            explicit_bucket_boundaries_advisory=ADVISED,
        )
        self.tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        self.expected = Tally()

    def call(
        self, seconds: float, model: str, tokens_in: int, tokens_out: int, error: str | None = None
    ) -> None:
        attributes: dict[str, str] = {**CHAT, "gen_ai.request.model": model}
        attributes["gen_ai.response.model"] = model
        failed = dict(attributes, **({"error.type": error} if error else {}))
        self.duration.record(seconds, failed)
        self.tokens.record(tokens_in, {**attributes, "gen_ai.token.type": "input"})
        self.tokens.record(tokens_out, {**attributes, "gen_ai.token.type": "output"})
        e = self.expected
        e.runs += 1
        e.errors += bool(error) and "timeout" not in error.lower()
        e.timeouts += bool(error) and "timeout" in error.lower()
        e.tokens_in += tokens_in
        e.tokens_out += tokens_out
        e.latency_count += 1
        e.latency_sum_ms += seconds * 1000
        e.latency_max_ms = max(e.latency_max_ms or 0.0, seconds * 1000)
        e.saw_version(VersionKind.MODEL, model, 0)


def exporter(url: str, delta: bool = False) -> OTLPMetricExporter:
    temporality = (
        {Histogram: AggregationTemporality.DELTA} if delta else None
    )  # the SDK's default is cumulative
    return OTLPMetricExporter(
        endpoint=f"{url}/v1/metrics",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
        preferred_temporality=temporality,
        # one exporter of the two compresses, as a Collector does by default
        compression=Compression.Gzip if delta else Compression.NoCompression,
    )


def reader_of(url: str, *, delta: bool = False) -> PeriodicExportingMetricReader:
    # exports happen when the test flushes, never on a timer
    return PeriodicExportingMetricReader(
        exporter(url, delta), export_interval_millis=3_600_000, export_timeout_millis=10_000
    )


def totals(bot: Bot) -> dict[str, Tally]:
    found: dict[str, Tally] = {}
    with Session(bot.container.engine) as session:
        for slot in watch.slots(session, since=0, until=2**31 - 1):
            found.setdefault(slot.workflow, Tally()).merge(slot.tally)
    return found


def models(bot: Bot, workflow: str) -> set[str]:
    with Session(bot.container.engine) as session:
        return {
            v.value
            for v in watch.versions(session, workflows=[workflow], kinds=[VersionKind.MODEL])
        }


def assert_stored(bot: Bot, workflow: Workflow, name: str) -> None:
    got, want = totals(bot)[name], workflow.expected
    assert (got.runs, got.errors, got.timeouts, got.failed) == (
        want.runs,
        want.errors,
        want.timeouts,
        want.failed,
    )
    assert (got.tokens_in, got.tokens_out) == (want.tokens_in, want.tokens_out)
    assert got.latency_count == want.latency_count
    assert got.latency_sum_ms == pytest.approx(want.latency_sum_ms)
    assert got.latency_max_ms == pytest.approx(want.latency_max_ms)
    assert sum(got.latency_buckets) == want.latency_count
    assert models(bot, name) == {model for _, model in want.versions}


@pytest.mark.parametrize("delta", [False, True], ids=["cumulative", "delta"])
def test_the_sdk_exporter_s_genai_metrics_are_stored(live: tuple[Bot, str], delta: bool) -> None:
    bot, url = live
    reader = reader_of(url, delta=delta)
    support = Workflow("support-bot", reader)
    try:
        support.call(0.05, "gpt-4o-mini", 120, 30)
        support.call(0.3, "gpt-4o-mini", 800, 200)
        support.call(1.5, "gpt-4o", 2000, 400)
        assert support.provider.force_flush()
        assert_stored(bot, support, "support-bot")

        support.call(0.2, "gpt-4o", 100, 0, error="RateLimitError")
        support.call(30.0, "gpt-4o", 100, 0, error="APITimeoutError")
        assert support.provider.force_flush()
        # nothing new: a cumulative export repeats the same points, a delta one sends none
        assert support.provider.force_flush()
        assert_stored(bot, support, "support-bot")
    finally:
        support.provider.shutdown()
    # the last export is the shutdown's: still nothing counted twice
    assert_stored(bot, support, "support-bot")


def test_the_sdk_s_data_in_otlp_json_is_stored(live: tuple[Bot, str]) -> None:
    bot, url = live
    reader = InMemoryMetricReader()
    billing = Workflow("billing-bot", reader)
    try:
        billing.call(0.12, "claude-sonnet", 300, 90)
        billing.call(2.4, "claude-sonnet", 5000, 700, error="InternalServerError")
        data = reader.get_metrics_data()
        assert data is not None
        body = json_format.MessageToJson(encode_metrics(data), use_integers_for_enums=True)
    finally:
        billing.provider.shutdown()
    r = httpx.post(
        f"{url}/v1/metrics",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json() == {}
    assert_stored(bot, billing, "billing-bot")
    # the same JSON export again (a retry of cumulative points) changes nothing
    r = httpx.post(
        f"{url}/v1/metrics",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200
    assert_stored(bot, billing, "billing-bot")


def test_a_workflow_s_own_metrics_from_the_sdk_are_stored(live: tuple[Bot, str]) -> None:
    bot, url = live
    provider = MeterProvider(
        metric_readers=[reader_of(url)],
        resource=Resource.create({"service.name": "support-prod"}),  # an alias
    )
    meter = provider.get_meter("support-app")
    cost = meter.create_counter("app.llm.cost", unit="USD")
    refusals = meter.create_counter("app.refusals")
    handoffs = meter.create_counter("app.handoffs")
    confidence = meter.create_histogram(
        "app.answer.confidence",
        explicit_bucket_boundaries_advisory=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    )
    expected = Tally()
    try:
        for batch in ([0.95, 0.42, 0.9], [0.1, 0.77]):
            for value in batch:
                confidence.record(value)
                cost.add(0.0125)
            refusals.add(1)
            handoffs.add(len(batch) - 1)
            expected.add_confidences(batch)
            expected.cost_usd += 0.0125 * len(batch)
            expected.refusals += 1
            expected.handoffs += len(batch) - 1
            assert provider.force_flush()
    finally:
        provider.shutdown()
    got = totals(bot)
    assert set(got) == {"support-chatbot"}
    tally = got["support-chatbot"]
    assert tally.cost_usd == pytest.approx(expected.cost_usd)
    assert (tally.refusals, tally.handoffs) == (expected.refusals, expected.handoffs)
    assert tally.confidence_count == expected.confidence_count
    assert tally.confidence_sum == pytest.approx(expected.confidence_sum)
    assert tally.confidence_buckets == expected.confidence_buckets
