"""Hostile text end to end: alerts, commands and handoffs in, every payload out checked (§7).

Hypothesis writes alert titles, descriptions, labels, links and AI context, journal notes, root
causes and resolutions, and every field of a handoff and its decision, mixing secrets (some split
by invisible characters or percent-encoded), live Slack mentions and links, Jira and Markdown
markup. The bot takes them through its real webhooks, commands and delivery lanes to the Slack,
Jira, PagerDuty, Opsgenie, paging-webhook and agent stand-ins; every request they recorded is
then checked for a live mention or link of the sender's and for any part of a secret. A second
test does the same in local mode, where the console is what goes out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from bot.handoffs.domain import Decision
from bot.rendering.cards import export_json, export_markdown
from bot.scheduler import run_due_jobs
from bot.services.commands import Invocation
from bot.settings import Settings
from storage.repositories import incident_view
from tests.conftest import TOKEN, Bot, FakeClock, example_policy, make_bot
from tests.standins.agent import AgentStandin
from tests.standins.jira import JiraStandin
from tests.standins.paging import OpsgenieStandin, PagerDutyStandin, WebhookReceiver
from tests.standins.slack import SlackStandin
from tests.support.handoffs import BOB, agent_headers, encoded, handoff_body
from tests.support.hostile import Leaks, hostile_texts, walk_strings
from tests.support.slack_requests import SECRET

# generated hostile text through every edge, lane and stand-in: about 20 s
pytestmark = pytest.mark.slow

KEY = "R0UTINGKEY0000000000000000000001"
ALICE = "U0ALICE001"
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
CHANNEL = "C0SUMMARY01"  # the email-summarizer workflow's channel in the example policy
# the Slack methods that carry text people read
SLACK_TEXT = {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open"}


@dataclass
class Standins:
    slack: SlackStandin | None
    jira: JiraStandin | None
    pd: PagerDutyStandin
    og: OpsgenieStandin
    hook: WebhookReceiver
    agent: AgentStandin


@contextmanager
def standins(*, local: bool) -> Iterator[Standins]:
    with ExitStack() as stack:
        slack = None if local else stack.enter_context(SlackStandin(tokens={"xoxb-test"}))
        if slack is not None:
            slack.add_usergroup("S0RESPOND1", [BOB, "U0DAVE0004"])
        yield Standins(
            slack=slack,
            jira=None if local else stack.enter_context(JiraStandin(mode="cloud")),
            pd=stack.enter_context(PagerDutyStandin(routing_keys={KEY})),
            og=stack.enter_context(OpsgenieStandin(api_keys={"og-key"})),
            hook=stack.enter_context(WebhookReceiver(secret="page-secret")),
            agent=stack.enter_context(AgentStandin()),
        )


def build(db_url: str, s: Standins) -> Bot:
    # the example policy as the other tests read it, with every paging provider switched on
    policy = example_policy()
    paging = policy.paging.model_copy(
        update={
            "pagerduty_routing_key": KEY,
            "opsgenie_api_key": "og-key",
            "webhook_url": s.hook.url,
            "webhook_secret": "page-secret",
        }
    )
    chat: dict[str, Any] = {}
    if s.slack is not None and s.jira is not None:
        chat = {
            "slack_bot_token": "xoxb-test",
            "slack_signing_secret": SECRET,
            "slack_api_url": s.slack.url,
            "jira_url": s.jira.url,
            "jira_user": s.jira.email,
            "jira_api_token": s.jira.token,
        }
    settings = Settings(
        database_url=db_url,
        ai_incident_webhook_token=TOKEN,
        pagerduty_events_url=s.pd.url,
        opsgenie_api_url=s.og.base_url,
        **chat,
    )
    # the agent stand-in listens on loopback, a target the operator must allow
    handoffs = policy.handoffs.model_copy(update={"callback_allow": ["127.0.0.1"]})
    return make_bot(
        db_url,
        policy=policy.model_copy(update={"paging": paging, "handoffs": handoffs}),
        clock=FakeClock(MONDAY),
        settings=settings,
        slack_interval_s=0,  # the stand-in does not limit the rate; pacing would only wait
    )


@contextmanager
def running(bot: Bot) -> Iterator[Bot]:
    """Serve webhooks; delivery and the scheduler's jobs are driven by `settle`."""
    try:
        with bot.client:
            bot.container.stop_delivery()
            bot.container.scheduler.shutdown(wait=True)
            yield bot
    finally:
        bot.container.engine.dispose()


def settle(bot: Bot) -> None:
    """Run the jobs and deliver until nothing is left, moving the clock past every backoff."""
    for _ in range(60):
        moved = run_due_jobs(bot.container.engine, bot.container.jobs, lambda: None)
        if bot.container.deliver_due() == 0 and moved == 0:
            return
        bot.clock.advance(seconds=30)
    raise AssertionError("delivery did not settle")


class Seen:
    """Where each stand-in's record stood, so an example checks only its own traffic."""

    def __init__(self, s: Standins, console: str) -> None:
        self.slack = len(s.slack.calls()) if s.slack else 0
        self.jira = len(s.jira.calls()) if s.jira else 0
        self.pd = len(s.pd.requests())
        self.og = len(s.og.requests())
        self.hook = len(s.hook.requests())
        self.agent = len(s.agent.requests)
        self.console = len(console)


def check_traffic(leaks: Leaks, s: Standins, since: Seen, console: str) -> int:
    """Check everything the stand-ins recorded since `since`; return how much was checked."""
    checked = 0
    if s.slack is not None:
        for call in s.slack.calls()[since.slack :]:
            if call.method not in SLACK_TEXT:
                continue
            where = f"Slack {call.method}"
            if call.params.get("text") is not None:
                leaks.check_slack(f"{where} text", str(call.params["text"]))
            for name in ("blocks", "view"):
                value = call.params.get(name)
                if isinstance(value, str):
                    value = json.loads(value)
                if value is not None:
                    leaks.check_blocks(f"{where} {name}", value)
            checked += 1
    if s.jira is not None:
        for jcall in s.jira.calls()[since.jira :]:
            for path, text in walk_strings(jcall.body):
                # descriptions and comments are wiki markup; summaries and labels plain text
                if path.endswith((".description", ".body")):
                    leaks.check_jira(f"Jira {jcall.route}{path}", text)
                else:
                    leaks.check_plain(f"Jira {jcall.route}{path}", text)
            checked += 1
    for name, records in (
        ("PagerDuty", s.pd.requests()[since.pd :]),
        ("Opsgenie", s.og.requests()[since.og :]),
        ("paging webhook", s.hook.requests()[since.hook :]),
    ):
        for rec in records:
            leaks.check_plain(name, rec.body.decode("utf-8", "replace"))
            for path, text in walk_strings(rec.json):
                leaks.check_plain(f"{name}{path}", text)
            checked += 1
    for delivery in s.agent.requests[since.agent :]:
        for path, text in walk_strings(json.loads(delivery.body)):
            leaks.check_plain(f"agent callback{path}", text)
        checked += 1
    if len(console) > since.console:
        leaks.check_plain("console", console[since.console :])
        checked += 1
    return checked


# -- one example -------------------------------------------------------------------------------

_numbers = itertools.count(1)


@dataclass
class Texts:
    """Hostile strings, each within the limit of the field it goes to."""

    short: list[str]  # AI context, link titles, labels, error types: 200 characters
    medium: list[str]  # titles, summaries, people: 500 characters
    long: list[str]  # descriptions, notes, responses: no tight limit
    decision: Decision


@st.composite
def texts(draw: st.DrawFn, leaks: Leaks) -> Texts:
    def some(n: int, limit: int) -> list[str]:
        return [draw(hostile_texts(leaks, limit=limit)) or "x" for _ in range(n)]

    return Texts(
        short=some(8, 200),
        medium=some(6, 500),
        long=some(6, 3000),
        decision=draw(st.sampled_from(list(Decision))),
    )


def run(bot: Bot, text: str, user: str = ALICE) -> str:
    return bot.container.commands.run(Invocation(text=text, user=user, channel=CHANNEL))


def one_example(bot: Bot, s: Standins, leaks: Leaks, t: Texts) -> int:
    n = next(_numbers)
    since = Seen(s, bot.console.getvalue())
    answers: list[str] = []

    alert = {
        "dedup_key": f"hostile-{n}",
        "status": "firing",
        "title": t.medium[0],
        "description": t.long[0],
        "workflow": "email-summarizer",
        "signal": {"kind": "error_rate", "value": 0.3},
        "links": [{"title": t.short[0], "url": "https://runbooks.example.com/summarizer"}],
        "labels": {"team": t.short[1]},
        "request_id": t.short[2],
        "trace_id": t.short[3],
        "agent": {"id": t.short[4], "version": "2.3.1"},
        "prompt_version": t.short[5],
        "gen_ai.request.model": t.short[6],
    }
    r = bot.post("/webhooks/alerts", alert)
    assert r.status_code == 202, r.text
    incident = str(r.json()["incident"])
    settle(bot)

    answers.append(run(bot, f"note {incident} {t.long[1]}"))
    answers.append(run(bot, f"rootcause {incident} {t.long[2]}"))
    answers.append(run(bot, f"status {incident}"))
    answers.append(run(bot, "list"))
    answers.append(run(bot, f"timeline {incident}"))
    answers.append(run(bot, f"postmortem {incident}"))

    body = handoff_body(
        f"hostile-{n}",
        request={
            "summary": t.medium[1],
            "text": t.long[3],
            "user": t.medium[2],
            "channel": t.medium[3],
        },
        attempted_response=t.long[4],
        error={"type": t.short[7], "message": t.long[5]},
        suggested_actions=[t.medium[4], t.short[0]],
        proposed_action={"name": t.short[1], "args": {"note": t.medium[5], "amount_eur": 1}},
        context={"customer_note": t.medium[0], "charges": 2},
        request_id=t.short[2],
        prompt_version=t.short[3],
        callback_url=s.agent.url,
    )
    raw = encoded(body)
    r = bot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw))
    assert r.status_code == 202, r.text
    handoff = int(str(r.json()["handoff_id"]).removeprefix("HO-"))
    settle(bot)
    runner = bot.container.handoffs
    assert runner is not None
    answers.append(runner.queue())
    for kind in ("edit", "reject"):
        form = runner.form(kind=kind, handoff_id=handoff, user=BOB, channel=None)  # type: ignore[arg-type]
        if isinstance(form, dict):
            leaks.check_blocks(f"{kind} form", form)
    answer = runner.decide(
        handoff_id=handoff,
        user=BOB,
        decision=t.decision,
        edited_output=t.long[1] if t.decision is Decision.EDITED else None,
        reason=t.medium[2] if t.decision is Decision.REJECTED else None,
    )
    answers.append(answer.text)

    # the escalation's next step (Opsgenie), the handoff's SLA reminders, then the end
    bot.clock.advance(minutes=11)
    settle(bot)
    answers.append(run(bot, f"resolve {incident} {t.long[2]}"))
    settle(bot)

    for i, text in enumerate(answers):
        leaks.check_slack(f"answer {i}", text)
    with Session(bot.container.engine) as session:
        view = incident_view(session, int(incident.removeprefix("INC-")))
    assert view is not None
    for path, text in walk_strings(export_json(view, bot.container.safe)):
        leaks.check_plain(f"export json{path}", text)
    leaks.check_markdown("export md", export_markdown(view, bot.container.safe))
    return check_traffic(leaks, s, since, bot.console.getvalue())


# -- the tests ---------------------------------------------------------------------------------


def test_hostile_text_reaches_no_stand_in_live_or_unredacted(tmp_path: Path) -> None:
    with standins(local=False) as s, running(build(f"sqlite:///{tmp_path / 'h.db'}", s)) as bot:

        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            # a failure names the renderer, the field and the secret; shrinking many texts takes minutes
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        )
        @given(st.data())
        def example(data: st.DataObject) -> None:
            leaks = Leaks()
            checked = one_example(bot, s, leaks, data.draw(texts(leaks)))
            assert checked > 20  # cards, threads, DMs, tickets, pages, the callback

        example()
        assert s.slack is not None and s.jira is not None
        for standin in (s.slack, s.jira, s.pd, s.og, s.hook):
            standin.assert_no_violations()
        assert s.og.requests() and s.agent.requests


def test_hostile_text_reaches_the_console_redacted_in_local_mode(tmp_path: Path) -> None:
    with standins(local=True) as s, running(build(f"sqlite:///{tmp_path / 'l.db'}", s)) as bot:

        @settings(
            max_examples=6,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            # a failure names the renderer, the field and the secret; shrinking many texts takes minutes
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        )
        @given(st.data())
        def example(data: st.DataObject) -> None:
            leaks = Leaks()
            assert one_example(bot, s, leaks, data.draw(texts(leaks))) > 0

        example()
        assert "new incident card" in bot.console.getvalue()
        assert "=== [jira" in bot.console.getvalue()
