"""`POST /webhooks/jira`: verified, done resolves the incident, assignees are journalled, no loops.

The bodies are the ones the Jira stand-in keeps for every change, shaped as Jira sends
`jira:issue_updated`, signed as Jira Cloud signs (`X-Hub-Signature: sha256=<hmac>`) or carrying
the secret in the URL as a Data Center webhook does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from handlers.auth import jira_signature
from tests.conftest import Bot, payload
from tests.standins.jira import JiraStandin
from tests.standins.slack import SlackStandin
from tests.support.jira_bot import (
    WEBHOOK_SECRET,
    act,
    deliver_webhook,
    incident,
    jira_bot,
    journal,
    settle,
)
from tests.support.slack_requests import ALICE


@pytest.fixture
def db_url(sqlite_url: str) -> Iterator[str]:
    """SQLite only: the subject here is Jira's webhook, not the database."""
    yield sqlite_url


def opened(bot: Bot) -> None:
    r = bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    assert r.status_code == 202
    settle(bot)


def test_bad_or_missing_secret_is_401_and_changes_nothing(db_url: str, jira: JiraStandin) -> None:
    with jira_bot(db_url, None, jira) as bot:  # Slack printed, not paced
        opened(bot)
        jira.move("AIOPS-1", "Done", by="bob")
        event = jira.webhook_events()[-1]
        body = json.dumps(event).encode()
        attempts = [
            ("/webhooks/jira", {"X-Hub-Signature": jira_signature("wrong", body)}),
            ("/webhooks/jira", {"X-Hub-Signature": "sha256=" + "0" * 64}),
            ("/webhooks/jira?secret=wrong", {}),
            ("/webhooks/jira", {"Authorization": "Bearer wrong"}),
            ("/webhooks/jira", {}),
        ]
        for url, headers in attempts:
            r = bot.client.post(url, content=body, headers=headers)
            assert r.status_code == 401, (url, headers, r.text)
        assert incident(bot).state == "triggered"


def test_a_ticket_moved_to_done_in_jira_resolves_the_incident(
    db_url: str, slack: SlackStandin, jira: JiraStandin
) -> None:
    # the stand-in takes posts at any rate: they are not paced
    with jira_bot(db_url, slack, jira, slack_interval_s=0) as bot:
        opened(bot)
        writes = len(jira.writes())
        jira.move("AIOPS-1", "Done", by="bob")
        r = deliver_webhook(bot, jira.webhook_events()[-1], cloud=jira.cloud)
        assert r.status_code == 200 and r.json() == {"status": "applied", "done": ["resolved"]}
        row = incident(bot)
        assert row.state == "resolved"
        assert row.resolved_by == "jira:Bob Example"  # bob is in the policy with this account
        # paging journals that the escalation stopped; the resolve itself is Jira's
        last = [j for j in journal(bot) if j.author != "paging"][-1]
        assert last.author == "jira:Bob Example"
        assert "ticket AIOPS-1 moved to Done in Jira by Bob Example" in last.text
        settle(bot)
        # the resolve came from Jira: nothing goes back (no comment, no transition)
        assert len(jira.writes()) == writes
        # Jira delivers webhooks at least once: the same event again changes nothing
        again = deliver_webhook(bot, jira.webhook_events()[-1], cloud=jira.cloud)
        assert again.json()["status"] == "unchanged"
        thread = [m["text"] for m in slack.messages() if m.get("thread_ts")]
        assert any("moved to Done in Jira by Bob Example" in t for t in thread)


def test_our_own_changes_echoed_back_cause_no_loop(db_url: str, jira: JiraStandin) -> None:
    with jira_bot(db_url, None, jira) as bot:  # Slack printed, not paced
        opened(bot)
        act(bot, "acknowledge", incident_id=1, actor=ALICE)
        act(bot, "resolve", incident_id=1, actor=ALICE, summary="fixed")
        settle(bot)
        events = jira.webhook_events()
        kinds = {i["field"] for e in events for i in (e.get("changelog") or {}).get("items", [])}
        assert kinds == {"assignee", "status"}
        entries = len(journal(bot))
        writes = len(jira.writes())
        for event in events:
            r = deliver_webhook(bot, event, cloud=jira.cloud)
            assert r.status_code == 200
            assert r.json()["status"] in ("unchanged", "ignored"), r.json()
        settle(bot)
        assert len(journal(bot)) == entries
        assert len(jira.writes()) == writes
        assert len(jira.webhook_events()) == len(events)


def test_an_assignee_change_in_jira_is_journalled_and_not_sent_back(
    db_url: str, jira: JiraStandin
) -> None:
    with jira_bot(db_url, None, jira) as bot:  # Slack printed, not paced
        opened(bot)
        writes = len(jira.writes())
        jira.reassign("AIOPS-1", "dave", by="alice")  # dave is not in the policy file
        r = deliver_webhook(bot, jira.webhook_events()[-1], cloud=jira.cloud)
        assert r.json() == {"status": "applied", "done": ["journalled assignee"]}
        last = journal(bot)[-1]
        assert last.text == "Ticket AIOPS-1 assigned to Dave Nolist in Jira by Alice Example."
        assert (
            incident(bot).jira_assignee == jira.user("dave")["accountId" if jira.cloud else "name"]
        )
        jira.reassign("AIOPS-1", None, by="alice")
        deliver_webhook(bot, jira.webhook_events()[-1], cloud=jira.cloud)
        assert journal(bot)[-1].text == "Ticket AIOPS-1 unassigned in Jira by Alice Example."
        settle(bot)
        assert len(jira.writes()) == writes
        assert incident(bot).state == "triggered"


def test_other_events_and_unknown_tickets_are_ignored(db_url: str, jira: JiraStandin) -> None:
    with jira_bot(db_url, None, jira) as bot:  # Slack printed, not paced
        opened(bot)
        comment = {"webhookEvent": "comment_created", "comment": {"body": "hi"}}
        assert deliver_webhook(bot, comment, cloud=jira.cloud).json()["status"] == "ignored"
        jira.move("AIOPS-1", "Done", by="bob")
        other = jira.webhook_events()[-1]
        other["issue"]["key"] = "OTHER-9"
        assert deliver_webhook(bot, other, cloud=jira.cloud).json()["status"] == "unchanged"
        assert incident(bot).state == "triggered"
        bad = bot.client.post(
            "/webhooks/jira",
            content=b"{}",
            headers={"X-Hub-Signature": jira_signature(WEBHOOK_SECRET, b"{}")},
        )
        assert bad.status_code == 422 and "webhookEvent" in bad.json()["error"]


def test_a_ticket_reopened_in_jira_is_noted_and_the_incident_stays_resolved(
    db_url: str, jira: JiraStandin
) -> None:
    with jira_bot(db_url, None, jira) as bot:  # Slack printed, not paced
        opened(bot)
        act(bot, "resolve", incident_id=1, actor=ALICE, summary=None)
        settle(bot)
        jira.move("AIOPS-1", "In Progress", by="bob")
        r = deliver_webhook(bot, jira.webhook_events()[-1], cloud=jira.cloud)
        assert r.json()["done"] == ["noted reopened ticket"]
        assert incident(bot).state == "resolved"
        assert "moved back to In Progress in Jira by Bob Example" in journal(bot)[-1].text
