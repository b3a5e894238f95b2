"""Jira tickets end to end: webhook in → Slack card and Jira ticket out, kept in step, exactly once.

The Slack and Jira stand-ins check every request against the vendors' published specs; the
delivery worker is driven by the test with the fake clock, so backoff is exact.
"""

from __future__ import annotations

import copy
import time

from bot.domain.severity import Severity
from tests.conftest import Bot, make_bot, payload
from tests.standins.jira import JiraStandin
from tests.standins.slack import SlackStandin
from tests.support.jira_bot import (
    act,
    card_ticket_field,
    deliver_webhook,
    failed_rows,
    incident,
    jira_bot,
    jira_settings,
    journal,
    policy_for,
    settle,
    short_timeout,
)
from tests.support.slack_requests import ALICE

FIRING = "alertmanager_v4_firing.json"
ALICE_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"


def fire(bot: Bot, body: dict[str, object] | None = None) -> None:
    r = bot.post("/webhooks/alertmanager", body or payload(FIRING))
    assert r.status_code in (200, 202), r.text


def test_an_incident_files_one_ticket_and_keeps_it_in_step(
    db_url: str, slack: SlackStandin, jira: JiraStandin
) -> None:
    with jira_bot(db_url, slack, jira) as bot:
        fire(bot)
        settle(bot)
        [issue] = jira.issues()
        f = issue["fields"]
        assert issue["key"] == "AIOPS-1"  # the email-summarizer workflow's project
        assert f["summary"] == "[P1] INC-1: email-summarizer error rate above 20%"
        assert f["issuetype"]["name"] == "Task"
        assert f["priority"]["name"] == "Highest"
        assert f["labels"] == [
            "ai-incident",
            "email-summarizer",
            "internal",
            "P1",
            "ai-ops",
            "ai-incident-INC-1",
        ]
        # the card was posted first, so the description links the thread
        permalink = "https://ai-incident-test.slack.com/archives/C0SUMMARY01/p"
        assert f"|{permalink}" in f["description"]
        row = incident(bot)
        assert row.jira_key == "AIOPS-1" and row.jira_thread_linked
        assert row.jira_url == f"{jira.url}/browse/AIOPS-1"
        assert "AIOPS-1" in card_ticket_field(slack)
        thread = [m["text"] for m in slack.messages() if m.get("thread_ts")]
        assert any("Jira ticket AIOPS-1 filed" in t for t in thread)

        act(bot, "acknowledge", incident_id=1, actor=ALICE)
        act(
            bot,
            "set_severity",
            incident_id=1,
            actor=ALICE,
            severity=Severity.P2,
            reason="one worker",
        )
        act(bot, "record_root_cause", incident_id=1, actor=ALICE, text="provider outage")
        act(bot, "resolve", incident_id=1, actor=ALICE, summary="provider back")
        settle(bot)
        f = jira.issue("AIOPS-1")["fields"]
        assistant = ALICE_ACCOUNT if jira.cloud else "alice"
        assert jira.user(assistant)["displayName"] == "Alice Example"
        assert f["assignee"]["displayName"] == "Alice Example"
        assert f["priority"]["name"] == "High"
        assert f["status"]["name"] == "Done"
        bodies = [c["body"] for c in jira.comments("AIOPS-1")]
        assert [b.split("\n")[0] for b in bodies] == [
            "State triggered → acknowledged by Alice Example",
            "Severity P1 → P2 (set by Alice Example): one worker",
            "Root cause recorded by Alice Example: provider outage",
            "State acknowledged → resolved by Alice Example: provider back",
        ]
        assert incident(bot).jira_assignee == assistant
        assert failed_rows(bot) == []
        assert len(jira.issues()) == 1


def test_an_outage_then_a_lost_answer_still_makes_exactly_one_ticket(
    db_url: str, slack: SlackStandin, jira: JiraStandin
) -> None:
    with jira_bot(db_url, slack, jira, short_timeout(policy_for(jira))) as bot:
        jira.fail_next("*", status=503, times=6)
        jira.hang_next("create", seconds=3)  # created, but the answer outlives the 1 s timeout
        fire(bot)
        bot.container.deliver_due()
        # Jira is down: Slack goes on, and the card says the ticket is pending
        assert "ticket pending" in card_ticket_field(slack)
        assert any(m.get("thread_ts") for m in slack.messages())
        assert incident(bot).jira_key is None
        settle(bot)
        [issue] = jira.issues()
        assert len(jira.calls("create")) == 1
        assert [c.status for c in jira.calls() if c.status == 503] == [503] * 6
        assert jira.calls("search"), "the retry after the timeout looked for the ticket first"
        assert incident(bot).jira_key == issue["key"]
        assert issue["key"] in card_ticket_field(slack)
        # later changes still reach the one ticket
        act(bot, "acknowledge", incident_id=1, actor=ALICE)
        settle(bot)
        assert len(jira.issues()) == 1
        assert jira.issue(issue["key"])["fields"]["assignee"] is not None


def test_a_ticket_filed_while_slack_is_down_gets_the_thread_link_later(
    db_url: str, slack: SlackStandin, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, slack, cloud) as bot:
        slack.fail_next("*", status=503, times=4)
        fire(bot)
        bot.container.deliver_due()
        [issue] = cloud.issues()
        assert "not posted yet" in issue["fields"]["description"]
        settle(bot)
        assert incident(bot).jira_thread_linked
        links = [
            c["body"] for c in cloud.comments(issue["key"]) if "slack.com/archives" in c["body"]
        ]
        assert len(links) == 1
        assert issue["key"] in card_ticket_field(slack)


def test_a_lost_comment_answer_is_not_posted_twice(db_url: str, cloud: JiraStandin) -> None:
    with jira_bot(db_url, None, cloud, short_timeout(policy_for(cloud))) as bot:
        fire(bot)
        settle(bot)
        cloud.hang_next("comment", seconds=3)
        act(bot, "record_root_cause", incident_id=1, actor=ALICE, text="bad prompt release")
        settle(bot)
        bodies = [c["body"] for c in cloud.comments("AIOPS-1")]
        assert sum("bad prompt release" in b for b in bodies) == 1
        assert len(cloud.calls("comment")) == 1


def test_assignee_by_email_when_the_policy_names_no_jira_account(
    db_url: str, jira: JiraStandin
) -> None:
    carol = "U0CAROL003"  # carol has an email but no jira_account in the example policy
    with jira_bot(db_url, None, jira) as bot:
        fire(bot)
        settle(bot)
        act(bot, "acknowledge", incident_id=1, actor=carol)
        settle(bot)
        assert jira.issue("AIOPS-1")["fields"]["assignee"]["displayName"] == "Carol Example"
        search = jira.calls("users")[-1]
        assert search.query.get("query" if jira.cloud else "username") == "carol@example.com"


def test_a_workflow_whose_done_transition_has_another_name(db_url: str) -> None:
    names = {"11": "Reopen", "21": "Start", "31": "Ship it"}  # 31 leads to a done status
    with (
        JiraStandin(mode="cloud", transition_names=names) as jira,
        jira_bot(db_url, None, jira) as bot,
    ):
        fire(bot)
        settle(bot)
        act(bot, "resolve", incident_id=1, actor=ALICE, summary=None)
        settle(bot)
        assert jira.issue("AIOPS-1")["fields"]["status"]["name"] == "Done"
        jira.assert_no_violations()


def test_every_incident_of_a_storm_gets_its_own_single_ticket(
    db_url: str, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, None, cloud) as bot:  # Slack in local mode: printed, not paced
        for group in range(5):
            body = copy.deepcopy(payload(FIRING))
            body["groupKey"] = f'{{}}:{{alertname="Storm{group}"}}'
            for _ in range(3):
                fire(bot, body)
        settle(bot)
        labels = sorted(
            next(lbl for lbl in i["fields"]["labels"] if lbl.startswith("ai-incident-INC"))
            for i in cloud.issues()
        )
        assert labels == [f"ai-incident-INC-{n}" for n in range(1, 6)]


def test_local_mode_prints_the_ticket_and_the_card_names_it(db_url: str) -> None:
    bot = make_bot(db_url)  # no Slack token, no JIRA_URL: both print
    with bot.client:
        bot.container.stop_delivery()
        fire(bot)
        settle(bot, step=2.0)
    out = bot.console.getvalue()
    assert "=== [jira AIOPS] new ticket LOCAL-1 (Task, priority Highest) ===" in out
    assert "[P1] INC-1: email-summarizer error rate above 20%" in out
    assert "labels: ai-incident, email-summarizer, internal, P1, ai-ops, ai-incident-INC-1" in out
    assert "h3. Why P1" in out
    updated = out.split("card updated ===\n")[-1]
    assert "ticket: LOCAL-1" in updated
    assert "[action] Jira ticket LOCAL-1 filed — ai-incident" in out
    bot.container.engine.dispose()


def test_a_slow_jira_never_holds_slack_back(
    db_url: str, slack: SlackStandin, cloud: JiraStandin
) -> None:
    # the worker runs in its own threads here, as in production: Jira has a lane of its own
    # unpaced: the fake clock stands still while the lanes run in their threads
    bot = make_bot(
        db_url,
        policy=policy_for(cloud),
        settings=jira_settings(db_url, slack, cloud),
        slack_interval_s=0,
    )
    cloud.hang_next("*", seconds=3, times=2)  # serverInfo and create: each answer takes 3 s
    with bot.client:
        started = time.monotonic()
        fire(bot)
        deadline = started + 10
        while time.monotonic() < deadline and not any(m.get("thread_ts") for m in slack.messages()):
            time.sleep(0.05)
        posted = time.monotonic() - started
        assert posted < 2.0, f"the card and first reply took {posted:.1f} s"
        assert "ticket pending" in card_ticket_field(slack)
        while time.monotonic() < started + 30 and incident(bot).jira_key is None:
            time.sleep(0.1)
        assert incident(bot).jira_key == "AIOPS-1"
    bot.container.engine.dispose()
    assert len(cloud.issues()) == 1


def test_alerts_resolved_at_the_source_close_the_ticket(db_url: str, cloud: JiraStandin) -> None:
    with jira_bot(db_url, None, cloud) as bot:
        fire(bot)
        settle(bot)
        fire(bot, payload("alertmanager_v4_resolved.json"))
        settle(bot)
        assert incident(bot).state == "resolved"
        assert cloud.issue("AIOPS-1")["fields"]["status"]["name"] == "Done"
        [comment] = cloud.comments("AIOPS-1")
        assert comment["body"].startswith(
            "State triggered → resolved by source default: every alert resolved at the source"
        )


def test_a_priority_the_project_does_not_know_still_files_the_ticket(
    db_url: str, cloud: JiraStandin
) -> None:
    policy = policy_for(cloud)
    jira = policy.jira.model_copy(update={"priorities": {"P1": "Blocker", "P2": "Major"}})
    with jira_bot(db_url, None, cloud, policy.model_copy(update={"jira": jira})) as bot:
        fire(bot)
        settle(bot)
        [issue] = cloud.issues()
        assert issue["fields"]["priority"] is None
        assert [c.status for c in cloud.calls("create")] == [400, 201]
        assert incident(bot).jira_key == issue["key"]


def test_a_reopened_incident_reopens_its_ticket(db_url: str, jira: JiraStandin) -> None:
    with jira_bot(db_url, None, jira) as bot:
        fire(bot)
        settle(bot)
        act(bot, "resolve", incident_id=1, actor=ALICE, summary=None)
        settle(bot)
        act(bot, "reopen", incident_id=1, actor=ALICE, reason="errors are back")
        settle(bot)
        assert jira.issue("AIOPS-1")["fields"]["status"]["name"] == "To Do"
        last = jira.comments("AIOPS-1")[-1]["body"]
        assert last.startswith("State resolved → triggered by Alice Example: errors are back")
        # Jira's echo of that transition changes nothing here
        entries = len(journal(bot))
        r = deliver_webhook(bot, jira.webhook_events()[-1], cloud=jira.cloud)
        assert r.json()["status"] in ("unchanged", "ignored")
        assert len(journal(bot)) == entries
