"""Paging: severity decides who is reached, escalation runs from the database, pages go out.

Two kinds of test, both with the example policy and a fake clock driving the scheduler's jobs
and the delivery lanes, so every wait is exact:
- end to end (`build`): the whole bot, webhook in, pages out through the stand-ins of Slack,
  PagerDuty, Opsgenie and the webhook; the main path, failing providers, restarts and
  replicas (these two on SQLite and on PostgreSQL: the database's locks and state are what
  they test), the commands and local mode;
- service level (`rig`): the incident and paging services with the paging delivery, pages
  going to in-memory pagers (tests/support/fake_pagers.py), on SQLite: what severity and
  time decide.

The example policy: `email-summarizer` follows `ai-default` (step 1: the on-call of `primary`
by Slack DM and PagerDuty, wait 10m; step 2: the AI lead by Slack DM and Opsgenie, wait 20m;
repeated once); `support-chatbot` follows `customer-facing`. Alice is the AI lead, Carol the
founder; in the week of Monday 2026-11-30 Bob is on call in `primary`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import Source, load_policy
from bot.delivery.worker import DeliveryWorker
from bot.domain.redaction import Redactor, SafeText
from bot.domain.severity import Severity
from bot.paging.delivery import PagingDelivery
from bot.paging.providers.ports import PageMessage
from bot.paging.service import PagingService
from bot.rendering.cards import export_json, export_markdown
from bot.scheduler import run_due_jobs
from bot.services.commands import Invocation
from bot.services.incidents import IncidentService
from bot.settings import Settings
from handlers.schemas import GenericAlert, from_generic
from storage.db import create_db_engine, migrate, session_scope
from storage.models import EscalationRow, IncidentRow, JournalRow, OutboxRow, PageRow
from storage.pages import GROUP, KINDS, THREAD
from storage.repositories import incident_view
from tests.conftest import EXAMPLE, TOKEN, Bot, FakeClock, make_bot, without_tickets
from tests.standins.paging import OpsgenieStandin, PagerDutyStandin, WebhookReceiver
from tests.standins.slack import SlackStandin
from tests.support.databases import database
from tests.support.fake_pagers import FakeChat, FakePager, fake_pagers

KEY = "R0UTINGKEY0000000000000000000001"
ALICE, BOB, CAROL = "U0ALICE001", "U0BOB00002", "U0CAROL003"
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # 11:00 in Berlin, business hours
SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@dataclass
class World:
    slack: SlackStandin
    pd: PagerDutyStandin
    og: OpsgenieStandin
    hook: WebhookReceiver


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """An empty SQLite database: for tests where the database's own behaviour is not the point."""
    with database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def world() -> Iterator[World]:
    with (
        SlackStandin(tokens={"xoxb-test"}) as slack,
        PagerDutyStandin(routing_keys={KEY}) as pd,
        OpsgenieStandin(api_keys={"og-key"}) as og,
        WebhookReceiver(secret="page-secret") as hook,
    ):
        slack.add_usergroup("S0RESPOND1", [BOB, "U0DAVE0004"])
        yield World(slack, pd, og, hook)
        for standin in (slack, pd, og, hook):
            standin.assert_no_violations()


def build(db_url: str, world: World, clock: FakeClock, routing_key: str = KEY) -> Bot:
    env = {
        "PAGERDUTY_ROUTING_KEY": routing_key,
        "OPSGENIE_API_KEY": "og-key",
        "PAGING_WEBHOOK_URL": world.hook.url,
        "PAGING_WEBHOOK_SECRET": "page-secret",
    }
    settings = Settings(
        database_url=db_url,
        ai_incident_webhook_token=TOKEN,
        slack_bot_token="xoxb-test",
        slack_api_url=world.slack.url,
        pagerduty_events_url=world.pd.url,
        opsgenie_api_url=world.og.base_url,
    )
    return make_bot(
        db_url, policy=load_policy(EXAMPLE, env), clock=clock, settings=settings, slack_interval_s=0
    )


@contextmanager
def running(bot: Bot) -> Iterator[Bot]:
    """Serve webhooks; the worker and the scheduler are driven by `tick`."""
    with bot.client:
        bot.container.stop_delivery()
        bot.container.scheduler.shutdown(wait=True)
        yield bot


def tick(bot: Bot) -> int:
    """Run the scheduler's jobs once, then deliver everything due; return what the jobs moved."""
    moved = run_due_jobs(bot.container.engine, bot.container.jobs, lambda: None)
    bot.container.deliver_due()
    return moved


def alert(workflow: str, value: float = 0.3, key: str = "k1") -> dict[str, Any]:
    return {
        "dedup_key": key,
        "status": "firing",
        "title": f"{workflow} error rate",
        "workflow": workflow,
        "signal": {"kind": "error_rate", "value": value},
    }


def run(bot: Bot, text: str, user: str = ALICE, channel: str = "C0SUMMARY01") -> str:
    answer = bot.container.commands.run(Invocation(text=text, user=user, channel=channel))
    bot.container.deliver_due()
    return answer


def journal(bot: Bot) -> list[str]:
    with Session(bot.container.engine) as s:
        return [r.text for r in s.exec(select(JournalRow).order_by(JournalRow.id)).all()]  # type: ignore[arg-type]


def pages(bot: Bot) -> list[PageRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(PageRow).order_by(PageRow.id)).all())  # type: ignore[arg-type]


def escalation(bot: Bot) -> EscalationRow:
    with Session(bot.container.engine) as s:
        return s.exec(select(EscalationRow)).one()


def dms(world: World, user: str) -> list[str]:
    return [str(m["text"]) for m in world.slack.dm_messages(user)]


def thread_texts(world: World, channel: str = "C0SUMMARY01") -> list[str]:
    return [str(m["text"]) for m in world.slack.messages(channel) if m.get("thread_ts")]


# -- the main path: P1 -> step 1 -> no ack -> step 2 -> ack -> no step 3 -----------------------


def test_p1_pages_step_one_then_step_two_then_an_ack_stops_it(
    sqlite_url: str, world: World
) -> None:
    clock = FakeClock(MONDAY)
    bot = build(sqlite_url, world, clock)
    with running(bot):
        assert bot.post("/webhooks/alerts", alert("email-summarizer")).status_code == 202
        tick(bot)
        # step 1 at once: the on-call (Bob) by Slack DM and PagerDuty
        assert len(dms(world, BOB)) == 1 and "INC-1 [P1]" in dms(world, BOB)[0]
        [trigger] = world.pd.events("trigger")
        assert trigger["dedup_key"] == "INC-1" and trigger["payload"]["severity"] == "critical"
        # the AI lead is notified at once: a DM and a mention in the thread
        assert len(dms(world, ALICE)) == 1 and "notified as the AI lead" in dms(world, ALICE)[0]
        assert any(f"<@{ALICE}>" in t for t in thread_texts(world))
        assert world.og.alerts == []
        assert any(
            "Escalation step 1 of 2, round 1 of 2: paging Bob Example via Slack DM, PagerDuty." in t
            for t in journal(bot)
        )

        # no acknowledgement: nothing before the wait is over, step 2 when it is
        clock.advance(minutes=9, seconds=59)
        tick(bot)
        assert len(dms(world, ALICE)) == 1 and world.og.alerts == []
        clock.advance(seconds=1)
        tick(bot)
        assert len(dms(world, ALICE)) == 2 and "escalation step 2 of 2" in dms(world, ALICE)[1]
        alert_ = world.og.alert("INC-1")
        assert alert_ is not None and alert_.priority == "P1"
        assert alert_.responders == [{"type": "user", "username": "alice@example.com"}]
        assert len(dms(world, BOB)) == 1  # Bob is not paged again in step 2

        # Alice acknowledges: the escalation stops, PagerDuty and Opsgenie hear of it
        clock.advance(minutes=2)
        assert run(bot, "ack INC-1").startswith("You acknowledged INC-1")
        assert escalation(bot).status == "stopped"
        assert any(t == f"Escalation stopped: acknowledged by {ALICE}." for t in journal(bot))
        assert [e["event_action"] for e in world.pd.events()] == ["trigger", "acknowledge"]
        assert world.pd.alerts["INC-1"].status == "acknowledged"
        assert alert_.acknowledged

        # no step 3, no second round, however long we wait
        for _ in range(12):
            clock.advance(minutes=10)
            tick(bot)
        assert len(dms(world, BOB)) == 1 and len(dms(world, ALICE)) == 2
        assert len(world.pd.events("trigger")) == 1 and alert_.count == 1
        assert [(p.person, p.channel, p.status) for p in pages(bot)] == [
            ("bob", "slack_dm", "sent"),
            ("bob", "pagerduty", "sent"),
            ("alice", "slack_dm", "sent"),
            ("alice", "slack_dm", "sent"),
            ("alice", "opsgenie", "sent"),
        ]

        # resolving is mirrored too
        run(bot, "resolve INC-1 rolled back", user=ALICE)
        assert world.pd.alerts["INC-1"].status == "resolved"
        assert alert_.status == "closed"

        # the pages sent are part of the incident (§5), in the export too
        with Session(bot.container.engine) as s:
            view = incident_view(s, 1)
        assert view is not None
        exported = export_json(view, SafeText(Redactor()))["pages"]
        assert [(p["person"], p["channel"], p["reason"]) for p in exported] == [
            ("bob", "slack_dm", "escalation"),
            ("bob", "pagerduty", "escalation"),
            ("alice", "slack_dm", "notify"),
            ("alice", "slack_dm", "escalation"),
            ("alice", "opsgenie", "escalation"),
        ]
        assert "| bob | pagerduty | escalation | sent |" in export_markdown(
            view, SafeText(Redactor())
        )
    bot.container.engine.dispose()


# -- never stall, never repeat ---------------------------------------------------------------


def test_a_bot_stopped_between_steps_resumes_at_the_right_step_and_time(
    db_url: str, world: World
) -> None:
    clock = FakeClock(MONDAY)
    first = build(db_url, world, clock)
    with running(first):
        first.post("/webhooks/alerts", alert("email-summarizer"))
        tick(first)
        assert len(dms(world, BOB)) == 1
    first.container.engine.dispose()

    # down for five minutes, mid-wait; a new process on the same database
    clock.advance(minutes=5)
    second = build(db_url, world, clock)
    with running(second):
        tick(second)
        assert len(dms(world, ALICE)) == 1  # only the AI-lead notice: step 2 is not due yet
        clock.advance(minutes=4, seconds=59)
        tick(second)
        assert len(dms(world, ALICE)) == 1
        clock.advance(seconds=1)
        # the job fires step 2 and this process dies before delivering anything
        run_due_jobs(second.container.engine, second.container.jobs, lambda: None)
        row = escalation(second)
        assert (row.step, row.round) == (0, 1)
        assert (row.next_at - clock.now).total_seconds() == 20 * 60
    second.container.engine.dispose()

    third = build(db_url, world, clock)
    with running(third):
        tick(third)
        tick(third)
        # step 2 went out exactly once; step 1 was not repeated
        assert len(dms(world, ALICE)) == 2 and len(dms(world, BOB)) == 1
        assert len(world.pd.events("trigger")) == 1
        assert len(world.og.requests()) == 1
        keys = [p.idempotency_key for p in pages(third)]
        assert len(keys) == len(set(keys)) == 5
        with Session(third.container.engine) as s:
            assert {r.status for r in s.exec(select(OutboxRow)).all()} == {"done"}
        # and the next step keeps its time: round 2 starts 20 minutes after step 2 fired
        clock.advance(minutes=19)
        tick(third)
        assert len(dms(world, BOB)) == 1
        clock.advance(minutes=1)
        tick(third)
        assert len(dms(world, BOB)) == 2
    third.container.engine.dispose()


@pytest.mark.postgres
def test_two_replicas_fire_a_due_step_once(world: World, tmp_path: Any) -> None:
    with database("postgres", tmp_path) as db_url:
        clock = FakeClock(MONDAY)
        one, two = build(db_url, world, clock), build(db_url, world, clock)
        with running(one), running(two):
            one.post("/webhooks/alerts", alert("email-summarizer"))
            tick(one)
            clock.advance(minutes=10)
            errors: list[BaseException] = []
            start = threading.Barrier(2)

            def replica(bot: Bot) -> None:
                try:
                    start.wait()
                    for _ in range(5):
                        run_due_jobs(bot.container.engine, bot.container.jobs, lambda: None)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=replica, args=(b,)) for b in (one, two)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert errors == []
            one.container.deliver_due()
            two.container.deliver_due()
            assert len(dms(world, ALICE)) == 2  # the notice, then step 2 once
            assert len(world.og.requests()) == 1
        one.container.engine.dispose()
        two.container.engine.dispose()


def test_a_failing_provider_never_holds_the_slack_dm_and_the_journal_says_why(
    sqlite_url: str, world: World
) -> None:
    clock = FakeClock(MONDAY)
    bot = build(sqlite_url, world, clock)
    with running(bot):
        world.pd.fail_next(status=503, times=100)
        bot.post("/webhooks/alerts", alert("email-summarizer"))
        tick(bot)
        assert len(dms(world, BOB)) == 1  # the DM went out while PagerDuty answers 503
        for _ in range(40):
            clock.advance(seconds=30)
            tick(bot)
        [pd_page] = [p for p in pages(bot) if p.channel == "pagerduty"]
        assert pd_page.status == "failed" and "503" in (pd_page.error or "")
        texts = journal(bot)
        assert any(
            t.startswith(
                "Page to Bob Example via PagerDuty is failing (PagerDuty trigger: HTTP 503"
            )
            for t in texts
        )
        failed = [t for t in texts if t.startswith("Page to Bob Example via PagerDuty failed: ")]
        assert len(failed) == 1 and "gave up after 8 attempts" in failed[0]
        # the thread says so too
        assert any("via PagerDuty failed" in t for t in thread_texts(world))
        assert len([r for r in world.pd.requests() if r.status == 503]) == 8
    bot.container.engine.dispose()


def test_a_page_the_provider_refuses_is_journalled_at_once(sqlite_url: str, world: World) -> None:
    clock = FakeClock(MONDAY)
    bot = build(sqlite_url, world, clock, routing_key="X" * 32)  # PagerDuty does not know this key
    with running(bot):
        bot.post("/webhooks/alerts", alert("email-summarizer"))
        tick(bot)
        assert len(dms(world, BOB)) == 1
        [failed] = [t for t in journal(bot) if "via PagerDuty failed" in t]
        assert "HTTP 400" in failed and "Invalid routing key" in failed
        assert [p.status for p in pages(bot) if p.channel == "pagerduty"] == ["failed"]
    bot.container.engine.dispose()


# -- commands ---------------------------------------------------------------------------------


def test_oncall_override_and_page_by_hand(sqlite_url: str, world: World) -> None:
    clock = FakeClock(MONDAY)
    bot = build(sqlite_url, world, clock)
    with running(bot):
        answer = run(bot, "oncall")
        assert answer.splitlines()[0] == "On call now:"
        assert f"• primary: <@{BOB}> until Fri 04 Dec 18:00 CET, then <@{CAROL}>" in answer
        assert f"• founders: <@{CAROL}> (no change in the next 90 days)" in answer

        answer = run(bot, f"oncall override <@{CAROL}|carol> 2h primary")
        assert answer == (
            f"<@{CAROL}> is on call in primary from Mon 30 Nov 11:00 CET until Mon 30 Nov "
            "13:00 CET."
        )
        assert f"• primary: <@{CAROL}> until Mon 30 Nov 13:00 CET, then <@{BOB}>" in run(
            bot, "oncall"
        )

        # an incident in the override's window pages Carol, not Bob
        bot.post("/webhooks/alerts", alert("email-summarizer"))
        tick(bot)
        assert len(dms(world, CAROL)) == 1 and dms(world, BOB) == []

        answer = run(bot, f"page <@{BOB}> INC-1", user=ALICE)
        assert answer == "Paging Bob Example for INC-1 via Slack DM, Opsgenie, webhook."
        assert len(dms(world, BOB)) == 1 and "paged by hand" in dms(world, BOB)[0]
        assert any(
            t == "Paged Bob Example by hand via Slack DM, Opsgenie, webhook." for t in journal(bot)
        )
        answer = run(bot, "page oncall INC-1", user=ALICE)
        assert answer.startswith("Paging Carol Example for INC-1 via Slack DM, PagerDuty")
        assert len(dms(world, CAROL)) == 2

        # once the override is over, Bob is back
        clock.advance(hours=2)
        assert f"• primary: <@{BOB}>" in run(bot, "oncall")
        assert run(bot, "page @nobody INC-1").startswith("I don't know @nobody")
        assert run(bot, "oncall override @alice 2h nowhere").startswith(
            "There is no schedule 'nowhere'"
        )
    bot.container.engine.dispose()


def test_an_override_with_explicit_times_in_team_time(sqlite_url: str, world: World) -> None:
    clock = FakeClock(MONDAY)
    bot = build(sqlite_url, world, clock)
    with running(bot):
        answer = run(bot, "oncall override @alice 2026-11-30T12:00 2026-12-01T09:00")
        assert answer == (
            f"<@{ALICE}> is on call in every schedule from Mon 30 Nov 12:00 CET until "
            "Tue 01 Dec 09:00 CET."
        )
        assert f"• primary: <@{BOB}> until Mon 30 Nov 12:00 CET, then <@{ALICE}>" in run(
            bot, "oncall"
        )
        assert f"• founders: <@{CAROL}> until Mon 30 Nov 12:00 CET, then <@{ALICE}>" in run(
            bot, "oncall"
        )
    bot.container.engine.dispose()


def test_local_mode_prints_the_pages(sqlite_url: str) -> None:
    bot = make_bot(sqlite_url, clock=FakeClock(MONDAY))
    with running(bot):
        bot.post("/webhooks/alerts", alert("email-summarizer"))
        tick(bot)
        out = bot.console.getvalue()
        assert (
            "[page via Slack DM (local mode)] Bob Example (U0BOB00002): INC-1 [P1] "
            "email-summarizer error rate — escalation step 1 of 2, round 1 of 2 of policy ai-default"
        ) in out
        assert "[page via PagerDuty (paging.pagerduty_routing_key is not set)] Bob Example" in out
        assert [p.status for p in pages(bot)] == ["sent", "sent", "sent"]
    bot.container.engine.dispose()


# -- the service-level rig: the paging services and delivery, in-memory pagers -----------------


RESPONDERS = {"S0RESPOND1": [BOB, "U0DAVE0004"]}


@dataclass
class Rig:
    engine: Engine
    clock: FakeClock
    incidents: IncidentService
    paging: PagingService
    pagers: dict[str, FakePager]
    chat: FakeChat
    lanes: list[DeliveryWorker]

    def alert(self, body: dict[str, Any]) -> None:
        """Take in a generic alert as the webhook does."""
        notification = from_generic(
            GenericAlert.model_validate(body), source_name="generic", source=Source()
        )
        with session_scope(self.engine) as s:
            self.incidents.ingest(s, notification)
        self._cards_posted()

    def declare(self, title: str, severity: Severity, workflow: str) -> IncidentRow:
        with session_scope(self.engine) as s:
            incident = self.incidents.declare(
                s, title=title, actor=ALICE, severity=severity, workflow=workflow
            )
        self._cards_posted()
        return incident

    def _cards_posted(self) -> None:
        """Give every incident its card in Slack, as the chat lane does: a thread to mention in."""
        with session_scope(self.engine) as s:
            for incident in s.exec(select(IncidentRow)).all():
                if incident.slack_ts is None:
                    incident.slack_channel = incident.slack_channel or "C0SUMMARY01"
                    incident.slack_ts = f"{incident.id}.000001"
                    s.add(incident)

    def sev(self, severity: Severity, reason: str, user: str = ALICE) -> None:
        with session_scope(self.engine) as s:
            self.incidents.set_severity(
                s, incident_id=1, actor=user, severity=severity, reason=reason, groups=RESPONDERS
            )
        self.deliver()

    def ack(self, user: str) -> None:
        with session_scope(self.engine) as s:
            self.incidents.acknowledge(s, incident_id=1, actor=user)
        self.deliver()

    def resolve(self, summary: str, user: str = ALICE) -> None:
        with session_scope(self.engine) as s:
            self.incidents.resolve(s, incident_id=1, actor=user, summary=summary, groups=RESPONDERS)
        self.deliver()

    def root_cause(self, text: str) -> None:
        with session_scope(self.engine) as s:
            self.incidents.record_root_cause(s, incident_id=1, actor=ALICE, text=text)

    def deliver(self) -> int:
        return sum(lane.run_once() for lane in self.lanes)

    def tick(self) -> int:
        """Run the scheduler's jobs once, then deliver everything due; return what jobs moved."""
        jobs = [self.incidents.review_due, self.incidents.escalate_due, self.paging.escalate_due]
        moved = run_due_jobs(self.engine, jobs, lambda: None)
        self.deliver()
        return moved

    def dms(self, user: str) -> list[PageMessage]:
        return self.pagers["slack_dm"].pages(user)

    def journal(self) -> list[str]:
        with Session(self.engine) as s:
            return [r.text for r in s.exec(select(JournalRow).order_by(JournalRow.id)).all()]  # type: ignore[arg-type]

    def pages(self) -> list[PageRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(PageRow).order_by(PageRow.id)).all())  # type: ignore[arg-type]

    def escalation(self) -> EscalationRow:
        with Session(self.engine) as s:
            return s.exec(select(EscalationRow)).one()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The paging services on SQLite, the policy's providers all configured, fake pagers."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'paging.db'}")
    migrate(engine)
    clock = FakeClock(MONDAY)
    env = {
        "PAGERDUTY_ROUTING_KEY": KEY,
        "OPSGENIE_API_KEY": "og-key",
        "PAGING_WEBHOOK_URL": "https://pager.example.com/hook",
        "PAGING_WEBHOOK_SECRET": "page-secret",
    }
    policy = without_tickets(load_policy(EXAMPLE, env))
    paging = PagingService(policy=policy, clock=clock)
    incidents = IncidentService(policy=policy, clock=clock, listeners=[paging])
    pagers = fake_pagers()
    chat = FakeChat()
    delivery = PagingDelivery(
        engine=engine,
        pagers=pagers,
        chat=chat,
        safe=SafeText(Redactor(policy.redaction)),
        policy=policy,
        clock=clock,
        group_members=lambda groups: {g: RESPONDERS.get(g, []) for g in groups},
        default_channel=policy.default_channel,
    )
    handlers = delivery.handlers()
    to_slack = {KINDS["slack_dm"], THREAD, GROUP}
    lanes = [
        DeliveryWorker(
            engine=engine, handlers={k: handlers[k] for k in kinds}, clock=clock, kinds=kinds
        )
        for kinds in (sorted(to_slack), sorted(set(handlers) - to_slack))
    ]
    yield Rig(engine, clock, incidents, paging, pagers, chat, lanes)
    engine.dispose()


def test_unanswered_pages_repeat_then_the_escalation_is_exhausted(rig: Rig) -> None:
    rig.alert(alert("email-summarizer"))
    rig.tick()
    for _ in range(6):
        rig.clock.advance(minutes=10)
        rig.tick()
    # two rounds of two steps: Bob twice (step 1), Alice twice (step 2) plus her notice
    assert len(rig.dms(BOB)) == 2 and len(rig.dms(ALICE)) == 3
    assert rig.escalation().status == "exhausted"
    assert any(
        t.startswith("Escalation exhausted: nobody acknowledged after 2 round(s)")
        for t in rig.journal()
    )
    rig.clock.advance(hours=5)
    rig.tick()
    assert len(rig.dms(BOB)) == 2


def test_p3_pages_nobody(rig: Rig) -> None:
    rig.alert(alert("email-summarizer", 0.03))
    rig.tick()
    rig.clock.advance(hours=1, minutes=59)
    rig.tick()
    with Session(rig.engine) as s:
        assert s.exec(select(IncidentRow)).one().severity == "P3"
    assert rig.pages() == []
    assert {c: p.sent for c, p in rig.pagers.items()} == {c: [] for c in rig.pagers}
    assert rig.chat.posts == []
    assert rig.escalation().status == "idle"


# -- severity decides -------------------------------------------------------------------------


def test_p2_notifies_the_ai_lead_and_pages_only_in_business_hours(rig: Rig) -> None:
    rig.clock.now = SATURDAY
    cost = {
        "dedup_key": "cost",
        "status": "firing",
        "title": "Per-run cost doubled",
        "workflow": "email-summarizer",
        "signal": {"kind": "cost_per_run", "value": 0.9, "baseline": 0.3},
    }
    rig.alert(cost)
    rig.tick()
    # the AI lead hears of it at once: a DM and a mention in the thread
    [notice] = rig.dms(ALICE)
    assert notice.severity == "P2" and "notified as the AI lead" in notice.reason
    assert any(f"<@{ALICE}>" in t and "P2" in t for t in rig.chat.thread_texts())
    # but nobody is paged on a Saturday
    assert [p.reason for p in rig.pages()] == ["notify"]
    assert any("the next page waits until Mon 09:00 CET (P2)" in t for t in rig.journal())
    # with a root cause it stays P2 (else the 4-hour rule makes it P1, which pages at once)
    rig.root_cause("the model price changed")
    rig.clock.now = datetime(2026, 11, 30, 7, 59, tzinfo=UTC)  # Monday 08:59 in Berlin
    rig.tick()
    assert rig.pagers["pagerduty"].sent == []
    rig.clock.now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    rig.tick()
    [trigger] = rig.pagers["pagerduty"].sent
    assert trigger.action == "page" and trigger.message.severity == "P2"
    assert len(rig.dms(BOB)) == 1


def test_raising_severity_by_hand_starts_paging_at_once(rig: Rig) -> None:
    incident = rig.declare("Summaries look wrong", Severity.P3, "email-summarizer")
    assert (incident.id, incident.severity) == (1, "P3")
    rig.tick()
    assert rig.pages() == []
    rig.clock.advance(minutes=3)
    rig.sev(Severity.P1, "customers got them", user=BOB)
    rig.tick()
    assert len(rig.dms(BOB)) == 1 and len(rig.pagers["pagerduty"].pages()) == 1
    assert rig.escalation().status == "active"
    # lowered to P3 by a responder: paging stops
    rig.sev(Severity.P3, "false alarm", user=ALICE)
    assert rig.escalation().status == "stopped"
    rig.clock.advance(hours=1)
    rig.tick()
    assert len(rig.dms(BOB)) == 1


def test_a_p2_raised_to_p1_pages_at_once_outside_business_hours(rig: Rig) -> None:
    rig.clock.now = SATURDAY
    rig.alert(alert("email-summarizer", 0.07))
    rig.sev(Severity.P2, "spreading")
    rig.tick()
    assert rig.pagers["pagerduty"].sent == []
    rig.sev(Severity.P1, "customers affected")
    rig.tick()
    assert len(rig.pagers["pagerduty"].pages()) == 1
    assert any("Now P1: paging goes on at once, day or night." in t for t in rig.journal())


def test_a_p2_the_four_hour_rule_makes_p1_pages_at_once_on_a_weekend(rig: Rig) -> None:
    rig.clock.now = SATURDAY  # Alice's week in `primary`
    cost = {
        "dedup_key": "cost",
        "status": "firing",
        "title": "Per-run cost doubled",
        "workflow": "email-summarizer",
        "signal": {"kind": "cost_per_run", "value": 0.9, "baseline": 0.3},
    }
    rig.alert(cost)
    rig.tick()
    assert rig.pagers["pagerduty"].sent == []
    rig.clock.advance(hours=3, minutes=59)
    rig.tick()
    assert rig.pagers["pagerduty"].sent == []
    rig.clock.advance(minutes=1, seconds=1)  # no root cause after four hours: P1
    rig.tick()
    texts = rig.journal()
    assert any(t.startswith("Severity P2 → P1") for t in texts)
    assert "Now P1: paging goes on at once, day or night." in texts
    [trigger] = rig.pagers["pagerduty"].pages()
    assert trigger.severity == "P1"
    assert [p.reason for p in rig.pages()] == ["notify", "escalation", "escalation"]
    assert any(f"<@{ALICE}>" in t and "P1" in t for t in rig.chat.thread_texts())


def test_p1_with_external_impact_reaches_the_founder_within_two_hours(rig: Rig) -> None:
    rig.alert(alert("support-chatbot"))
    rig.tick()
    # customer-facing step 1: the on-call and the responders' user group, with the webhook
    assert len(rig.dms(BOB)) == 1 and len(rig.dms("U0DAVE0004")) == 1
    [hooked] = [
        s
        for s in rig.pagers["webhook"].sent
        if s.message.person and s.message.person.slack_id == "U0DAVE0004"
    ]
    assert hooked.action == "page" and hooked.message.public_id == "INC-1"
    rig.ack(BOB)  # before step 2 (the founder) fires
    assert rig.dms(CAROL) == []
    rig.clock.advance(hours=1, minutes=59)
    rig.tick()
    assert rig.dms(CAROL) == []
    rig.clock.advance(minutes=1)
    rig.tick()
    [notice] = rig.dms(CAROL)
    assert "notified as founder" in notice.reason
    assert any(
        t.startswith("P1 with external impact unresolved for two hours") for t in rig.journal()
    )
    assert rig.pagers["webhook"].actions().count("acknowledge") == 1


def test_a_p1_resolved_within_two_hours_does_not_reach_the_founder(rig: Rig) -> None:
    rig.alert(alert("support-chatbot"))
    rig.tick()
    rig.ack(BOB)
    rig.clock.advance(minutes=30)
    rig.resolve("fixed", user=ALICE)
    rig.clock.advance(hours=3)
    rig.tick()
    assert rig.dms(CAROL) == []
    assert rig.escalation().founder_due_at is None
