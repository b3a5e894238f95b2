"""`/ai-incident watch` in Slack: the summary in Block Kit, the 7-day chart, the card's last hour."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from bot.domain.watch.history import Run, RunStatus
from storage.db import session_scope
from storage.watch import record_runs
from tests.conftest import Bot, payload
from tests.handlers.test_slack_commands import command_body, run
from tests.handlers.test_slack_digest import wait_for
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import SUMMARY_CHANNEL, signed


def record(bot: Bot, workflow: str, count: int, *, errors: int = 0, ago: int = 1) -> None:
    """Record `count` runs of a workflow, the last `errors` of them failed, `ago` minutes back."""
    at = bot.clock() - timedelta(minutes=ago)
    runs = [
        Run(
            workflow=workflow,
            run_id=f"{workflow}-{ago}-{n}",
            at=at,
            status=RunStatus.ERROR if n >= count - errors else RunStatus.OK,
            latency_ms=1200.0,
            tokens_in=900,
            tokens_out=300,
            cost_usd=0.012,
            model="gpt-4o",
            prompt_version="v12",
        )
        for n in range(count)
    ]
    with session_scope(bot.container.engine) as session:
        record_runs(session, runs)


def answer(bot: Bot, slack: SlackStandin, text: str) -> dict[str, Any]:
    """Run a command and return the whole ephemeral response (text and blocks)."""
    token = f"R{len(slack.responses()) + 1}"
    body = command_body(slack, text, token=token)
    r = bot.client.post("/slack/events", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = wait_for(lambda: slack.responses(token))
    assert found[0]["response_type"] == "ephemeral"
    return found[0]


def section_texts(response: dict[str, Any]) -> list[str]:
    blocks = response.get("blocks") or []
    for block in blocks:
        assert Block.parse(block) is not None
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def test_watch_summarises_every_workflow_in_block_kit(sbot: Bot, slack: SlackStandin) -> None:
    record(sbot, "email-summarizer", 40, errors=2)
    record(sbot, "support-chatbot", 10)
    response = answer(sbot, slack, "watch")
    sections = section_texts(response)
    by_name = {s.splitlines()[0]: s for s in sections}
    assert "*email-summarizer*" in by_name and "*support-chatbot*" in by_name
    summary = by_name["*email-summarizer*"]
    assert "Runs last hour: 40 · errors 10 min 5.0 %" in summary
    assert "model gpt-4o · prompt v12" in summary
    assert "Runs last hour: 10" in by_name["*support-chatbot*"]
    assert "email-summarizer" in str(response["text"])


def test_watch_one_workflow(sbot: Bot, slack: SlackStandin) -> None:
    record(sbot, "email-summarizer", 5)
    record(sbot, "support-chatbot", 10)
    sections = section_texts(answer(sbot, slack, "watch email-summarizer"))
    assert len(sections) == 1 and sections[0].startswith("*email-summarizer*\nRuns last hour: 5")


def test_watch_names_the_known_workflows_for_an_unknown_one(sbot: Bot, slack: SlackStandin) -> None:
    record(sbot, "nightly-report", 3)
    text = run(sbot, slack, "watch no-such-flow")
    assert text.startswith("No workflow named no-such-flow has been seen; known: ")
    assert "email-summarizer" in text and "nightly-report" in text
    # a workflow only telemetry knows is found in another case too
    sections = section_texts(answer(sbot, slack, "watch Nightly-Report"))
    assert sections[0].startswith("*nightly-report*")


def test_the_chart_is_uploaded_to_the_channel_the_command_came_from(
    sbot: Bot, slack: SlackStandin
) -> None:
    record(sbot, "email-summarizer", 12, errors=1, ago=30)
    record(sbot, "email-summarizer", 8, ago=60 * 26)
    assert (
        run(sbot, slack, "watch email-summarizer chart")
        == "The 7-day chart of email-summarizer is coming to this channel."
    )
    [chart] = wait_for(lambda: slack.files())
    assert chart["shared_in"] == SUMMARY_CHANNEL and chart.get("thread_ts") is None
    assert bytes(chart["bytes"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "email-summarizer" in str(chart["title"])


def test_no_chart_without_runs_in_the_week(sbot: Bot, slack: SlackStandin) -> None:
    record(sbot, "email-summarizer", 3, ago=60 * 24 * 9)  # older than the chart's week
    assert (
        run(sbot, slack, "watch email-summarizer chart")
        == "email-summarizer has no runs in the last 7 days: no chart to draw."
    )
    assert run(sbot, slack, "watch support-chatbot chart").endswith("no chart to draw.")
    sbot.container.deliver_due()
    assert slack.files() == []


def test_a_chart_needs_a_workflow(sbot: Bot, slack: SlackStandin) -> None:
    text = run(sbot, slack, "watch chart")
    assert text.startswith("`watch chart` needs a workflow")
    assert "Usage: `/ai-incident watch [workflow] [chart]`" in text


def card_blocks_posted(slack: SlackStandin) -> list[dict[str, Any]]:
    for message in slack.messages():
        blocks = message.get("blocks") or []
        if any(b.get("type") == "header" for b in blocks):
            return list(blocks)
    return []


def context_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]


def test_the_card_shows_the_workflows_last_hour(sbot: Bot, slack: SlackStandin) -> None:
    record(sbot, "email-summarizer", 50, errors=1)
    r = sbot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    assert r.status_code == 202
    blocks = wait_for(lambda: card_blocks_posted(slack))
    [line] = [t for t in context_texts(blocks) if t.startswith("Last hour")]
    assert line.startswith("Last hour: 50 runs · errors 2.0 % (10 min) · p95 ")
    assert line.endswith(" · $0.012 a run · gpt-4o")


def test_a_card_of_an_unwatched_workflow_has_no_last_hour(sbot: Bot, slack: SlackStandin) -> None:
    r = sbot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    assert r.status_code == 202
    blocks = wait_for(lambda: card_blocks_posted(slack))
    assert not any(t.startswith("Last hour") for t in context_texts(blocks))
