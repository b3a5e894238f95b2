"""Both ways in, end to end: a workflow instrumented with the OpenTelemetry SDK and one posting
its runs from a script show the figures they recorded in `/ai-incident watch` and in
`ai-incident watch --format json`.

The SDK's own OTLP/HTTP exporter and a plain HTTP client talk to a bot served on loopback with
the example policy (whose support-chatbot is known to OpenTelemetry as `support-bot-prod`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli import main
from bot.domain.watch.history import LATENCY_BOUNDS_MS
from bot.services.commands import Invocation
from handlers.http import create_app
from tests.conftest import AUTH, EXAMPLE, Bot, FakeClock, make_bot
from tests.integration.test_otlp_sdk import Workflow, reader_of
from tests.support.databases import database
from tests.support.live import serving

pytestmark = pytest.mark.slow

# (seconds, model, tokens in, tokens out, error.type)
CALLS: list[tuple[float, str, int, int, str | None]] = [
    (0.4 + 0.1 * n, "gpt-4o-2024-08-06", 1000 + 10 * n, 200 + n, None) for n in range(18)
] + [
    (0.9, "gpt-4o-2024-08-06", 900, 0, "RateLimitError"),
    (30.0, "gpt-4o-2024-08-06", 900, 0, "APITimeoutError"),
]


def script_runs(now: datetime) -> list[dict[str, Any]]:
    """Thirty runs of the email summarizer in the last 20 minutes, three of them failed."""
    return [
        {
            "workflow": "email-summarizer",
            "run_id": f"nightly-{n}",
            "at": (now - timedelta(minutes=20) + timedelta(seconds=30 * n)).isoformat(),
            "status": "error" if n in (4, 11, 27) else "ok",
            "latency_ms": 1000 + 100 * n,
            "tokens_in": 3000,
            "tokens_out": 500,
            "cost_usd": 0.01 if n % 2 else 0.02,
            "confidence": 0.8 if n % 3 else 0.5,
            "handed_off": n % 10 == 0,
            "model": "claude-sonnet-4" if n >= 10 else "claude-3-5-sonnet",
            "prompt_version": "v7",
        }
        for n in range(30)
    ]


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Bot, str]]:
    with database("sqlite", tmp_path) as url:
        # the SDK stamps points with the real time: the bot's clock reads it too (it never waits)
        bot = make_bot(url, clock=FakeClock(datetime.now(UTC)))
        for name in ("AI_INCIDENT_WEBHOOK_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("AI_INCIDENT_CONFIG", str(EXAMPLE))
        with serving(create_app(bot.container)) as served:
            yield bot, served
        bot.container.engine.dispose()


def cli_figures(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert main(["watch", "--format", "json"]) == 0
    return {f["workflow"]: f for f in json.loads(capsys.readouterr().out)}


def slack_answer(bot: Bot, workflow: str) -> str:
    return bot.container.commands.run(
        Invocation(text=f"watch {workflow}", user="U0ALICE01", channel="C0SUMMARY01")
    )


def bucket_of(ms: float) -> tuple[float, float]:
    """The latency bucket that holds `ms`: its lower and upper bound."""
    index = next(i for i, bound in enumerate(LATENCY_BOUNDS_MS) if ms <= bound)
    return (LATENCY_BOUNDS_MS[index - 1] if index else 0.0), LATENCY_BOUNDS_MS[index]


def test_an_sdk_instrumented_workflow_and_a_script_show_what_they_recorded(
    live: tuple[Bot, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bot, url = live
    instrumented = Workflow("support-bot-prod", reader_of(url))
    try:
        for seconds, model, tokens_in, tokens_out, error in CALLS:
            instrumented.call(seconds, model, tokens_in, tokens_out, error)
        assert instrumented.provider.force_flush()
    finally:
        instrumented.provider.shutdown()
    posted = httpx.post(
        f"{url}/webhooks/runs", json={"runs": script_runs(bot.clock())}, headers=AUTH, timeout=10
    )
    assert posted.status_code == 202 and posted.json()["accepted"] == 30, posted.text

    figures = cli_figures(capsys)
    chatbot, summarizer = figures["support-chatbot"], figures["email-summarizer"]

    # what the SDK recorded: 20 calls, 1 error and 1 timeout, tokens, latencies, the model
    tokens = sum(c[2] + c[3] for c in CALLS)
    latencies = sorted(c[0] * 1000 for c in CALLS)
    assert chatbot["runs_last_hour"] == 20
    assert chatbot["error_rate_10m"] == chatbot["error_rate_2h"] == pytest.approx(2 / 20)
    assert chatbot["tokens_per_run_1h"] == pytest.approx(tokens / 20)
    assert chatbot["model"] == "gpt-4o-2024-08-06"
    assert chatbot["latency_max_ms_1h"] == pytest.approx(30_000)
    # a percentile from the histogram lies in the bucket of the true one
    true_p50 = statistics.quantiles(latencies, n=100, method="inclusive")[49]
    low, high = bucket_of(true_p50)
    assert low <= chatbot["latency_p50_ms_1h"] <= high
    assert chatbot["cost_per_run_1h"] is None  # nothing reported a cost: no made-up number
    assert chatbot["last_run_at"] is not None

    # what the script posted: 30 runs, 3 failed, costs, confidence, handoffs, versions
    assert summarizer["runs_last_hour"] == 30
    assert summarizer["error_rate_2h"] == pytest.approx(3 / 30)
    assert summarizer["tokens_per_run_1h"] == pytest.approx(3500)
    assert summarizer["cost_per_run_1h"] == pytest.approx((15 * 0.01 + 15 * 0.02) / 30)
    # the example pins email-summarizer's cost per run
    assert summarizer["cost_per_run_baseline"] == pytest.approx(0.004)
    assert summarizer["confidence_mean_1h"] == pytest.approx((20 * 0.8 + 10 * 0.5) / 30)
    assert summarizer["handoff_rate_1h"] == pytest.approx(3 / 30)
    assert summarizer["refusal_rate_30m"] == 0
    assert summarizer["last_latencies_ms"] == [3700, 3800, 3900]
    assert summarizer["model"] == "claude-sonnet-4" and summarizer["prompt_version"] == "v7"
    assert summarizer["latency_max_ms_1h"] == pytest.approx(3900)
    assert summarizer["tokens_per_run_baseline"] is None  # less than 7 days of history
    assert summarizer["baseline_note"].startswith("not enough history")

    # Slack's /ai-incident watch reads the same figures
    chat_text = slack_answer(bot, "support-chatbot")
    assert "Runs last hour: 20 " in chat_text and "gpt-4o-2024-08-06" in chat_text
    summary_text = slack_answer(bot, "email-summarizer")
    assert "Runs last hour: 30 " in summary_text and "claude-sonnet-4" in summary_text
