"""A bot talking to the Slack and Jira stand-ins, with its delivery worker driven by the test."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session, select

from bot.config import Policy
from bot.settings import Settings
from handlers.auth import jira_signature
from storage.db import session_scope
from storage.models import IncidentRow, JournalRow, OutboxRow
from tests.conftest import TOKEN, Bot, example_policy, make_bot
from tests.standins.jira import JiraStandin
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import SECRET

WEBHOOK_SECRET = "change-me-jira"  # the example policy's default


def jira_settings(db_url: str, slack: SlackStandin | None, jira: JiraStandin) -> Settings:
    """Settings for the stand-ins: Jira Cloud by email and API token, DC by PAT; no `slack`: local."""
    chat: dict[str, Any] = {}
    if slack is not None:
        chat = {
            "slack_bot_token": "xoxb-test",
            "slack_signing_secret": SECRET,
            "slack_api_url": slack.url,
        }
    return Settings(
        database_url=db_url,
        ai_incident_webhook_token=TOKEN,
        **chat,
        jira_url=jira.url,
        jira_user=jira.email if jira.cloud else None,
        jira_api_token=jira.token,
    )


def dc_policy() -> Policy:
    """The example policy with Data Center user names instead of Cloud account ids."""
    policy = example_policy()
    people = {
        key: person.model_copy(update={"jira_account": key if person.jira_account else None})
        for key, person in policy.people.items()
    }
    return policy.model_copy(update={"people": people})


def policy_for(jira: JiraStandin) -> Policy:
    """The example policy, with people named the way this Jira names them."""
    return example_policy() if jira.cloud else dc_policy()


def short_timeout(policy: Policy, seconds: float = 1.0) -> Policy:
    """The policy with a Jira client timeout short enough for a test to wait out."""
    from datetime import timedelta

    jira = policy.jira.model_copy(update={"timeout": timedelta(seconds=seconds)})
    return policy.model_copy(update={"jira": jira})


@contextmanager
def jira_bot(
    db_url: str,
    slack: SlackStandin | None,
    jira: JiraStandin,
    policy: Policy | None = None,
    slack_interval_s: float = 0,
) -> Iterator[Bot]:
    """Run the app with its ingest writer; leave delivery to `settle`/`run_once`.

    Posts go unpaced by default (the stand-in does not limit the rate); pacing: test_slack_pacing.py.
    """
    bot = make_bot(
        db_url,
        policy=policy or policy_for(jira),
        settings=jira_settings(db_url, slack, jira),
        slack_interval_s=slack_interval_s,
    )
    try:
        with bot.client:
            bot.container.stop_delivery()
            yield bot
    finally:
        bot.container.engine.dispose()


def open_rows(bot: Bot) -> list[OutboxRow]:
    with Session(bot.container.engine) as s:
        return [r for r in s.exec(select(OutboxRow)).all() if r.status in ("pending", "in_flight")]


def settle(bot: Bot, *, step: float = 30.0, rounds: int = 400) -> None:
    """Deliver until nothing is pending, moving the fake clock past every backoff."""
    for _ in range(rounds):
        bot.container.deliver_due()
        if not open_rows(bot):
            return
        bot.clock.advance(seconds=step)
    raise AssertionError(f"still pending: {[(r.kind, r.last_error) for r in open_rows(bot)]}")


def failed_rows(bot: Bot) -> list[OutboxRow]:
    with Session(bot.container.engine) as s:
        return [r for r in s.exec(select(OutboxRow)).all() if r.status == "failed"]


def incident(bot: Bot, incident_id: int = 1) -> IncidentRow:
    with Session(bot.container.engine) as s:
        row = s.get(IncidentRow, incident_id)
        assert row is not None
        return row


def act(bot: Bot, use_case: str, **kwargs: Any) -> Any:
    """Run an incident use case in its own transaction, as a command or button would."""
    with session_scope(bot.container.engine) as s:
        return getattr(bot.container.incidents, use_case)(s, **kwargs)


def card_ticket_field(slack: SlackStandin) -> str:
    """Return the Ticket field of the incident card as Slack shows it now."""
    # the card is the one top-level post outside direct messages (pages go to DMs)
    top = [
        m
        for m in slack.messages()
        if m.get("thread_ts") in (None, m["ts"]) and not str(m["channel"]).startswith("D")
    ]
    assert len(top) == 1, top
    for block in top[0].get("blocks") or []:
        for f in block.get("fields") or []:
            if f["text"].startswith("*Ticket*"):
                return str(f["text"])
    raise AssertionError("the card has no Ticket field")


def sections(description: str) -> dict[str, list[str]]:
    """Split a wiki-markup description into its h2/h3 sections, line by line."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in description.splitlines():
        m = re.match(r"^h[23]\. (.*)$", line)
        if m:
            current = m.group(1)
            out[current] = []
        elif line.strip():
            out.setdefault(current, []).append(line)
    return out


def deliver_webhook(bot: Bot, event: dict[str, Any], *, cloud: bool = True) -> Any:
    """POST a webhook body the way Jira does: signed on Cloud, `?secret=` on Data Center."""
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    url = "/webhooks/jira"
    if cloud:
        headers["X-Hub-Signature"] = jira_signature(WEBHOOK_SECRET, body)
    else:
        url += f"?secret={WEBHOOK_SECRET}"
    return bot.client.post(url, content=body, headers=headers)


def journal(bot: Bot) -> list[JournalRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(JournalRow).order_by(JournalRow.id)).all())  # type: ignore[arg-type]
