"""The weekly digest in Slack: posted once on schedule with its chart; the text survives a failed upload."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlmodel import Session, select

from bot.scheduler import run_due_jobs
from storage.models import DigestRunRow
from tests.conftest import Bot, payload
from tests.handlers.test_slack_commands import run
from tests.standins.slack import SlackStandin

DIGEST_CHANNEL = "C0AIREVIEW1"  # the example policy's digest channel
NEXT_MONDAY_0900 = datetime(2026, 11, 30, 8, 0, 30, tzinfo=UTC)  # 09:00:30 Berlin


def wait_for(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def the_run(bot: Bot) -> DigestRunRow | None:
    with Session(bot.container.engine) as s:
        return s.exec(select(DigestRunRow)).first()


def digest_posts(slack: SlackStandin) -> list[dict[str, object]]:
    return [
        m
        for m in slack.messages(DIGEST_CHANNEL)
        if "Weekly AI operations review" in str(m.get("text"))
    ]


def week_with_an_incident(bot: Bot) -> None:
    assert (
        bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json")).status_code
        == 202
    )
    bot.clock.now = NEXT_MONDAY_0900


def test_the_digest_is_posted_once_with_its_chart(sbot: Bot, slack: SlackStandin) -> None:
    week_with_an_incident(sbot)
    for _ in range(3):  # three scheduler ticks, as after a restart at 09:00
        run_due_jobs(sbot.container.engine, sbot.container.jobs, sbot.container.poke)
    run = wait_for(lambda: (r := the_run(sbot)) is not None and r.chart and r)
    [post] = digest_posts(slack)
    text = str(post["text"])
    assert "2026-W48" in text and "posted late" not in text
    for heading in (
        "1. Cost against baseline",
        "2. Error rates",
        "3. P3 incidents since last week",
        "4. Did every production workflow run?",
        "Incidents by severity",
        "Handoffs",
    ):
        assert heading in text
    assert "P1: 1 opened" in text
    [chart] = slack.files()
    assert chart["shared_in"] == DIGEST_CHANNEL and chart["thread_ts"] == post["ts"]
    assert bytes(chart["bytes"]).startswith(b"\x89PNG")
    assert run.status == "posted" and run.chart == chart["id"]
    assert [c.method for c in slack.calls() if c.method.startswith("files.")] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


def test_a_failed_upload_still_posts_the_text(sbot: Bot, slack: SlackStandin) -> None:
    week_with_an_incident(sbot)
    slack.fail_uploads(5)
    run_due_jobs(sbot.container.engine, sbot.container.jobs, sbot.container.poke)
    run = wait_for(lambda: (r := the_run(sbot)) is not None and r.chart_error and r)
    assert run.status == "posted" and run.chart is None
    assert len(digest_posts(slack)) == 1 and slack.files() == []


def test_the_digest_command_previews_ephemerally(sbot: Bot, slack: SlackStandin) -> None:
    assert (
        sbot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json")).status_code
        == 202
    )
    answer = run(sbot, slack, "digest")
    assert answer.startswith("Preview (the week so far):")
    assert "2026-W48" in answer and "P1: 1 opened" in answer
    assert digest_posts(slack) == []  # a preview posts nothing to the channel


def test_the_digest_counts_handoffs_and_their_decisions(sbot: Bot, slack: SlackStandin) -> None:
    from bot.handoffs.domain import Decision
    from tests.support.handoffs import BOB, handoff_body

    runner = sbot.container.handoffs
    assert runner is not None
    for n, confidence in enumerate((0.97, 0.85, 0.62, 0.40)):
        body = handoff_body(f"digest-{n}", confidence=confidence)
        assert sbot.post("/webhooks/handoffs", body).status_code == 202
    sbot.clock.advance(minutes=6)
    runner.claim(handoff_id=3, user=BOB)
    sbot.clock.advance(minutes=4)
    runner.decide(handoff_id=3, user=BOB, decision=Decision.APPROVED)
    runner.decide(handoff_id=4, user=BOB, decision=Decision.REJECTED, reason="wrong order")
    answer = run(sbot, slack, "digest")
    assert "4 handoffs: auto 1, review 1, human 2" in answer
    # HO-3 claimed after 6 min; HO-4 decided (so claimed on the way) after 10 min
    assert "time to claim p50 8 min, p90 9 min" in answer
    assert "to decide p50 10 min, p90 10 min" in answer
    # cost_usd 0.0123 carried by each of the four handoffs
    assert "support-chatbot: $0.05 (no baseline set)" in answer
    assert "0.00-0.50: 0.0% of 1 (0 edited, 1 rejected)" in answer
    assert "0.50-0.80: 100.0% of 1 (0 edited, 0 rejected)" in answer
