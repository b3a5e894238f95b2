"""Paging from Slack: `/ai-incident oncall` and `page` over HTTP, and the DM's Acknowledge button."""

from __future__ import annotations

from sqlmodel import Session, select

from storage.models import EscalationRow, IncidentRow
from tests.conftest import Bot
from tests.handlers.test_slack_commands import run
from tests.handlers.test_slack_interactivity import interaction, post, wait
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import ALICE

BOB = "U0BOB00002"


def test_oncall_page_and_the_acknowledge_button_in_the_dm(sbot: Bot, slack: SlackStandin) -> None:
    # 2026-11-23 10:00 UTC (the fake clock): Alice's week in `primary`
    answer = run(sbot, slack, "oncall")
    assert answer.startswith("On call now:")
    assert f"• primary: <@{ALICE}> until Fri 27 Nov 18:00 CET, then <@U0CAROL003>" in answer

    body = {
        "dedup_key": "k",
        "status": "firing",
        "title": "Summaries leak addresses",
        "workflow": "email-summarizer",
        "signal": {"kind": "error_rate", "value": 0.03},
    }
    assert sbot.post("/webhooks/alerts", body).status_code == 202  # P3: nobody paged
    answer = run(sbot, slack, f"page <@{BOB}> INC-1")
    assert answer == "Paging Bob Example for INC-1 via Slack DM."
    wait(lambda: slack.dm_messages(BOB))
    [dm] = slack.dm_messages(BOB)
    assert "INC-1 [P3]" in dm["text"] and "paged by hand" in dm["text"]

    # Bob acknowledges from the DM's button
    button = dm["blocks"][-1]["elements"][0]
    post(sbot, interaction(slack, BOB, {**button, "block_id": dm["blocks"][-1]["block_id"]}, "B1"))

    def acknowledged() -> bool:
        with Session(sbot.container.engine) as s:
            return s.exec(select(IncidentRow)).one().state == "acknowledged"

    wait(acknowledged)
    with Session(sbot.container.engine) as s:
        assert s.exec(select(IncidentRow)).one().commander == BOB
        assert s.exec(select(EscalationRow)).one().status == "idle"
