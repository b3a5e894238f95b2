"""A Jira ticket per queued handoff, and the postmortem draft on the incident's ticket.

Handoffs arrive signed at the webhook and are claimed and decided through signed Slack requests;
the Slack and Jira stand-ins check every request against the vendors' published specs (their
fixtures fail the test on any violation). The delivery lanes are driven by the test with the
fake clock, so retries and backoff are exact.
"""

from __future__ import annotations

import re
import time
from typing import Any

from sqlmodel import Session

from bot.domain.redaction import Redactor, SafeText
from bot.handoffs.domain import Decision
from bot.rendering.reports import GAP, Section, render_jira
from storage.db import session_scope
from storage.models import HandoffRow
from tests.conftest import Bot, make_bot, payload
from tests.handlers.test_handoff_slack import answer, click, opened_view, submit
from tests.standins.jira import JiraStandin
from tests.standins.slack import SlackStandin
from tests.support.handoffs import BOB, REVIEW_CHANNEL, agent_headers, encoded, handoff_body
from tests.support.jira_bot import (
    act,
    failed_rows,
    jira_bot,
    policy_for,
    sections,
    settle,
    short_timeout,
)
from tests.support.slack_requests import ALICE

SECRET_KEY = "sk-proj-4fG7hK2mN9pQ1rS5tU8vW3xY6zA0bC"
EMAIL = "jane.doe@example.com"
BOB_ACCOUNT = "5b10a2844c20165700ede21g"
ALICE_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"


def hostile_handoff() -> dict[str, Any]:
    """The README's refund handoff, carrying a secret, an email and would-be Jira markup."""
    return handoff_body(
        "refund-1234",
        request={
            "summary": "Refund for order 1234",
            "text": f"I was charged twice.\nh1. Reach me at {EMAIL}\n* urgent *",
            "user": "customer-881",
            "channel": "web-chat",
        },
        attempted_response="I have refunded both charges. [details|https://evil.example/x]",
        error={"type": "ToolTimeout", "message": f"billing API timed out; api_key={SECRET_KEY}"},
        proposed_action={
            "name": "refund",
            "args": {"order": "1234", "amount_eur": 49.0, "api_key": "abc123secret"},
        },
        context={"charges": 2, "customer_email": EMAIL},
    )


def post_handoff(bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
    raw = encoded(body)
    r = bot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw))
    assert r.status_code in (200, 202), r.text
    result: dict[str, Any] = r.json()
    return result


def handoff(bot: Bot, handoff_id: int = 1) -> HandoffRow:
    with Session(bot.container.engine) as s:
        row = s.get(HandoffRow, handoff_id)
        assert row is not None
        return row


def decided(bot: Bot, status: str, timeout: float = 15.0) -> bool:
    """Wait for a decision: a form's submission is acted on just after Slack's ack."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handoff(bot).status == status:
            return True
        time.sleep(0.05)
    return False


def decided_at(bot: Bot) -> str:
    at = handoff(bot).decided_at
    assert at is not None
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def review_card_fields(slack: SlackStandin) -> list[str]:
    """Return the fields of the review card as Slack shows it now (after its updates)."""
    [card] = [m for m in slack.messages(REVIEW_CHANNEL) if m.get("thread_ts") in (None, m["ts"])]
    return [f["text"] for b in card.get("blocks") or [] for f in b.get("fields") or []]


def slack_action(bot: Bot, slack: SlackStandin, user: str, action_id: str, token: str) -> str:
    """Press a review card button as `user`; return what Slack shows them."""
    click(bot, slack, user, action_id, "HO-1", token)
    return answer(slack, token)


def test_a_queued_handoff_files_one_ticket_with_its_full_context(
    db_url: str, slack: SlackStandin, jira: JiraStandin
) -> None:
    with jira_bot(db_url, slack, jira) as bot:
        assert post_handoff(bot, hostile_handoff())["tier"] == "human"
        settle(bot)
        # the agent retries: the same handoff, no second ticket
        assert post_handoff(bot, hostile_handoff())["handoff_id"] == "HO-1"
        settle(bot)
        [issue] = jira.issues()
        assert len(jira.calls("create")) == 1
        assert handoff(bot).jira_key == issue["key"] == "SUP-1"  # support-chatbot's project
        assert "*Ticket*\nSUP-1" in review_card_fields(slack)
    f = issue["fields"]
    assert f["summary"] == "[HO-1] human support-chatbot: Refund for order 1234"
    assert f["issuetype"]["name"] == "Task"
    assert f["labels"] == [
        "ai-incident",
        "ai-handoff",
        "support-chatbot",
        "customer-facing",
        "human",
        "ai-ops",
        "ai-handoff-HO-1",
    ]
    description = f["description"]
    for leaked in (SECRET_KEY, "abc123secret", EMAIL, "[details|", "h1. Reach"):
        assert leaked not in description, leaked
    parts = sections(description)
    head = parts["HO-1: Refund for order 1234"]
    assert head[:9] == [
        "*Tier:* human — the agent waits for the decision",
        "*Why this tier:* confidence 0.62 < review threshold 0.80",
        "*Confidence:* 0.62 (band 0.60-0.65)",
        "*Reason:* low_confidence",
        "*Workflow:* support-chatbot (customer-facing)",
        "*Agent:* support-bot 2.3.1",
        "*Status:* queued",
        "*Received:* 2026-11-23 10:00:00 UTC",
        "*Claim by:* 2026-11-23 10:15:00 UTC   *Decide by:* 2026-11-23 11:00:00 UTC",
    ]
    # the card was posted first, so the ticket links it
    assert head[9].startswith(
        "*Review card:* [HO-1 in Slack|https://ai-incident-test.slack.com/archives/C0REVIEWS01/p"
    )
    assert len(head) == 10
    assert parts["Original request"] == [
        "*Summary:* Refund for order 1234",
        "*From:* customer-881   *Channel:* web-chat",
        "{quote}",
        "I was charged twice.",
        "h1\\. Reach me at \\[REDACTED:email\\]",
        "\\* urgent \\*",
        "{quote}",
    ]
    assert parts["Attempted response"] == [
        "{quote}",
        "I have refunded both charges. \\[details\\|https://evil.example/x\\]",
        "{quote}",
    ]
    assert parts["Error"] == [
        "*Type:* ToolTimeout",
        "*Message:* billing API timed out; api_key=\\[REDACTED:openai_api_key\\]",
    ]
    assert parts["Suggested actions"] == [
        "* check the order in billing",
        "* refund one charge only",
    ]
    assert parts["Proposed action"] == [
        "*Action:* refund",
        "||Argument||Value||",
        "|amount_eur|49.0|",
        "|api_key|\\[REDACTED:api_key\\]|",
        "|order|1234|",
    ]
    assert parts["Context"] == [
        "||Field||Value||",
        "|charges|2|",
        "|customer_email|\\[REDACTED:email\\]|",
    ]
    assert parts["AI context"] == [
        "||Field||Value||",
        "|request|req-77|",
        "|trace|4bf92f3577b34da6a3ce929d0e0e4736|",
        "|agent|support-bot|",
        "|agent version|2.3.1|",
        "|prompt|refunds-v7|",
        "|model requested|gpt-4o|",
        "|input tokens|812|",
        "|cost (USD)|0.0123|",
        "|confidence|0.62|",
    ]


def test_an_auto_tier_handoff_gets_no_ticket_and_a_review_one_does(
    db_url: str, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, None, cloud) as bot:
        assert post_handoff(bot, handoff_body("sure", confidence=0.97))["tier"] == "auto"
        settle(bot)
        assert cloud.issues() == [] and cloud.calls("create") == []
        assert handoff(bot).jira_key is None
        assert post_handoff(bot, handoff_body("fairly-sure", confidence=0.9))["tier"] == "review"
        settle(bot)
        [issue] = cloud.issues()
        assert issue["fields"]["summary"] == (
            "[HO-2] review support-chatbot: Customer asks for a refund of order 1234"
        )
        assert "review" in issue["fields"]["labels"]
        assert "ai-handoff-HO-2" in issue["fields"]["labels"]
        assert handoff(bot, 2).jira_key == issue["key"]
        assert failed_rows(bot) == []


def test_claim_assigns_the_claimer_and_an_edit_comments_and_closes_the_ticket(
    db_url: str, slack: SlackStandin, jira: JiraStandin
) -> None:
    with jira_bot(db_url, slack, jira) as bot:
        post_handoff(bot, hostile_handoff())
        settle(bot)
        assert slack_action(bot, slack, BOB, "handoff_claim", "C1").startswith("You claimed HO-1")
        settle(bot)
        assignee = jira.issue("SUP-1")["fields"]["assignee"]
        if jira.cloud:
            assert assignee["accountId"] == BOB_ACCOUNT
        else:
            assert assignee["name"] == "bob"
        assert assignee["displayName"] == "Bob Example"

        click(bot, slack, BOB, "handoff_edit", "HO-1", "E1")
        view = opened_view(slack, "handoff_edit")
        corrected = f"I refunded one charge.\n{{color:red}}Write to {EMAIL}{{color}}"
        submit(bot, view, BOB, "handoff_output", "output", corrected)
        assert decided(bot, "edited")
        settle(bot)
        issue = jira.issue("SUP-1")
        assert issue["fields"]["status"]["name"] == "Done"
        [comment] = jira.comments("SUP-1")
        lines = comment["body"].splitlines()
        assert lines[:6] == [
            f"*HO-1 approved with an edited output* by Bob Example at {decided_at(bot)}.",
            "The corrected output the agent receives:",
            "{quote}",
            "I refunded one charge.",
            "\\{color:red\\}Write to \\[REDACTED:email\\]\\{color\\}",
            "{quote}",
        ]
        # the quiet marker a retry looks for before commenting again
        marker = r"\{color:#97a0af\}ai-incident:handoff-ticket:1:decision:[0-9a-f]{32}\{color\}"
        assert re.fullmatch(marker, lines[-1]), lines[-1]
        assert EMAIL not in comment["body"]
        assert len(jira.issues()) == 1
        assert failed_rows(bot) == []


def test_release_sla_and_rejection_are_commented_and_the_new_claimer_assigned(
    db_url: str, slack: SlackStandin, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, slack, cloud) as bot:
        post_handoff(bot, hostile_handoff())
        settle(bot)
        # nobody claims it within the human tier's 15 minutes: the reminder step is commented
        bot.clock.advance(minutes=16)
        with session_scope(bot.container.engine) as s:
            assert bot.container.handoffs is not None
            assert bot.container.handoffs.service.sla_due(s) == 1
        settle(bot)
        slack_action(bot, slack, BOB, "handoff_claim", "C1")
        assert "back in the queue" in slack_action(bot, slack, BOB, "handoff_release", "C2")
        slack_action(bot, slack, ALICE, "handoff_claim", "C3")
        settle(bot)
        assignee = cloud.issue("SUP-1")["fields"]["assignee"]
        assert assignee["accountId"] == ALICE_ACCOUNT
        # Alice's 15-minute lease runs out: the handoff goes back to the queue, and Jira says so
        bot.clock.advance(minutes=16)
        with session_scope(bot.container.engine) as s:
            assert bot.container.handoffs.service.expire_leases(s) == 1

        click(bot, slack, ALICE, "handoff_reject", "HO-1", "R1")
        view = opened_view(slack, "handoff_reject")
        why = f"Never refund twice; <!channel> ask {EMAIL} [here|https://evil.example]"
        submit(bot, view, ALICE, "handoff_reason", "reason", why)
        assert decided(bot, "rejected")
        settle(bot)
        assert cloud.issue("SUP-1")["fields"]["status"]["name"] == "Done"
        firsts = [c["body"].split("\n")[0] for c in cloud.comments("SUP-1")]
        assert firsts == [
            "SLA missed: HO-1 was not claimed by 2026-11-23 10:15 UTC; a reminder went to the "
            "review card's thread.",
            "HO-1 released by Bob Example; it is back in the queue.",
            "The claim of Alice Example expired; HO-1 is back in the queue.",
            f"*HO-1 rejected* by Alice Example at {decided_at(bot)}.",
        ]
        rejection = cloud.comments("SUP-1")[-1]["body"].splitlines()
        assert rejection[1:5] == [
            "The reason, as the agent receives it:",
            "{quote}",
            "Never refund twice; <\\!channel> ask \\[REDACTED:email\\] \\[here\\|https://evil.example\\]",
            "{quote}",
        ]
        assert len(cloud.issues()) == 1


def test_a_jira_outage_then_a_lost_answer_still_files_exactly_one_ticket(
    db_url: str, slack: SlackStandin, jira: JiraStandin
) -> None:
    with jira_bot(db_url, slack, jira, short_timeout(policy_for(jira))) as bot:
        jira.fail_next("*", status=503, times=6)
        jira.hang_next("create", seconds=3)  # filed, but the answer outlives the 1 s timeout
        post_handoff(bot, hostile_handoff())
        bot.container.deliver_due()
        # Jira is down: the review card is up all the same, without a ticket yet
        assert review_card_fields(slack)
        assert not any(f.startswith("*Ticket*") for f in review_card_fields(slack))
        assert handoff(bot).jira_key is None
        settle(bot)
        [issue] = jira.issues()
        assert len(jira.calls("create")) == 1
        assert [c.status for c in jira.calls() if c.status == 503] == [503] * 6
        assert jira.calls("search"), "the retry after the timeout looked for the ticket first"
        assert handoff(bot).jira_key == issue["key"]
        assert f"*Ticket*\n{issue['key']}" in review_card_fields(slack)
        # what follows reaches the one ticket
        assert "approved" in slack_action(bot, slack, BOB, "handoff_approve", "A1")
        settle(bot)
        assert len(jira.issues()) == 1
        [comment] = jira.comments(issue["key"])
        assert comment["body"].startswith("*HO-1 approved* by Bob Example at ")
        assert "The agent's response stands as it was." in comment["body"]
        assert jira.issue(issue["key"])["fields"]["status"]["name"] == "Done"
        assert failed_rows(bot) == []


def test_local_mode_prints_the_handoff_ticket_and_its_decision(db_url: str) -> None:
    bot = make_bot(db_url)  # no Slack token, no JIRA_URL: everything prints
    with bot.client:
        bot.container.stop_delivery()
        post_handoff(bot, hostile_handoff())
        settle(bot, step=2.0)
        runner = bot.container.handoffs
        assert runner is not None
        assert runner.claim(handoff_id=1, user=BOB).ok
        assert runner.decide(handoff_id=1, user=BOB, decision=Decision.APPROVED).ok
        settle(bot, step=2.0)
    bot.container.engine.dispose()
    out = bot.console.getvalue()
    assert "=== [jira SUP] new ticket LOCAL-1 (Task, priority default) ===" in out
    assert "[HO-1] human support-chatbot: Refund for order 1234" in out
    assert (
        "labels: ai-incident, ai-handoff, support-chatbot, customer-facing, human, ai-ops, "
        "ai-handoff-HO-1" in out
    )
    assert "h3. Attempted response" in out and SECRET_KEY not in out
    assert f"[jira LOCAL-1] assigned to {BOB_ACCOUNT}" in out
    assert "[jira LOCAL-1] *HO-1 approved* by Bob Example" in out
    assert "[jira LOCAL-1] moved to Done" in out
    assert handoff(bot).jira_key == "LOCAL-1"


def test_the_postmortem_draft_is_attached_to_the_incident_ticket_once(
    db_url: str, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, None, cloud, short_timeout(policy_for(cloud))) as bot:
        r = bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
        assert r.status_code == 202, r.text
        settle(bot)
        act(bot, "acknowledge", incident_id=1, actor=ALICE)
        act(
            bot,
            "note",
            incident_id=1,
            actor=ALICE,
            text=f"rolled back to v11 [see|https://evil.example], told {EMAIL}",
        )
        act(bot, "record_root_cause", incident_id=1, actor=ALICE, text="provider changed model")
        act(bot, "resolve", incident_id=1, actor=ALICE, summary="rollback held")
        settle(bot)
        before = len(cloud.comments("AIOPS-1"))
        cloud.hang_next("comment", seconds=3)  # the draft is added, but the answer is lost
        act(bot, "report", incident_id=1, actor=ALICE, name="postmortem")
        settle(bot)
        comments = cloud.comments("AIOPS-1")
        assert len(comments) == before + 1
        # the retry after the lost answer found its marker and did not post again
        assert len(cloud.calls("comment")) == len(comments) and cloud.calls("comments")
        draft = comments[-1]["body"]
        lines = draft.splitlines()
        assert lines[0] == "h2. Postmortem draft: INC-1 email-summarizer error rate above 20%"
        assert (
            lines[1]
            == "Requested by Alice Example in Slack; the same draft is in the incident thread."
        )
        parts = sections(draft)
        assert list(parts)[1:] == [
            "Summary",
            "Impact",
            "Timeline",
            "What was tried",
            "Root cause",
            "Prompt version",
            "Model version",
            "External API changes",
            "Follow-ups",
        ]
        assert "* Resolution: rollback held" in parts["Summary"]
        assert parts["Root cause"] == ["* provider changed model"]
        # the draft's gaps are text, not Jira links
        assert parts["Prompt version"] == [f"* \\[{GAP}: the prompt version\\]"]
        timeline = "\n".join(parts["Timeline"])
        assert "rolled back to v11 \\[see\\|https://evil.example\\]" in timeline
        assert EMAIL not in draft and "told \\[REDACTED:email\\]" in timeline
        assert cloud.issue("AIOPS-1")["fields"]["status"]["name"] == "Done"
        assert failed_rows(bot) == []


def test_render_jira_escapes_the_drafts_own_brackets_once() -> None:
    esc = SafeText(Redactor()).jira
    text = render_jira(
        "Postmortem draft: INC-7",
        [Section("Root cause", [f"[{GAP}: the root cause]", esc("a [link|x]\n* two")])],
    )
    assert text.splitlines() == [
        "h2. Postmortem draft: INC-7",
        "",
        "h3. Root cause",
        f"* \\[{GAP}: the root cause\\]",
        "* a \\[link\\|x\\] \\\\ \\* two",
    ]
