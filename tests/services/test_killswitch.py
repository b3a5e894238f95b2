"""The kill switch: pause and resume, who may, what is journalled and audited, auto-pause on P1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.alerts import AlertIn, AlertStatus, Notification
from bot.domain.severity import Evidence, Severity
from bot.services.errors import NotAResponder, UnknownWorkflow
from bot.services.incidents import IncidentService
from bot.services.killswitch import AUTO_PAUSE, KillSwitchService
from storage.db import create_db_engine, migrate, session_scope
from storage.models import JournalRow, SwitchAuditRow
from tests.conftest import FakeClock, example_policy

ALICE = "U0ALICE001"  # responder
BOB = "U0BOB00002"  # responder
CAROL = "U0CAROL003"  # founder, not a responder


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[Any, IncidentService, KillSwitchService, FakeClock]]:
    engine = create_db_engine(db_url)
    migrate(engine)
    clock = FakeClock()
    policy = example_policy()
    switch = KillSwitchService(policy=policy, clock=clock)
    incidents = IncidentService(policy=policy, clock=clock, listeners=[switch.on_incident_event])
    yield engine, incidents, switch, clock
    engine.dispose()


def audit(engine: Any) -> list[SwitchAuditRow]:
    with Session(engine) as s:
        return list(s.exec(select(SwitchAuditRow).order_by(SwitchAuditRow.id)).all())  # type: ignore[arg-type]


def journal_texts(engine: Any, incident_id: int) -> list[str]:
    with Session(engine) as s:
        return [
            r.text
            for r in s.exec(select(JournalRow).where(JournalRow.incident_id == incident_id)).all()
        ]


def test_pause_and_resume_are_journalled_in_each_open_incident_and_audited(
    env: tuple[Any, IncidentService, KillSwitchService, FakeClock],
) -> None:
    engine, incidents, switch, clock = env
    with session_scope(engine) as s:
        first = incidents.declare(s, title="a", actor=ALICE, workflow="email-summarizer").id
        second = incidents.declare(s, title="b", actor=ALICE, workflow="email-summarizer").id
        other = incidents.declare(s, title="c", actor=ALICE, workflow="weekly-report").id
        closed = incidents.declare(s, title="d", actor=ALICE, workflow="email-summarizer").id
    assert first and second and other and closed
    with session_scope(engine) as s:
        incidents.resolve(s, incident_id=closed, actor=ALICE)
    with session_scope(engine) as s:
        assert switch.state(s, "email-summarizer").enabled
        flip = switch.pause(s, workflow="email-summarizer", actor=ALICE, reason="leaks names")
    assert flip.changed and not flip.state.enabled and flip.incidents == (first, second)
    assert flip.state.changed_by == ALICE and flip.state.reason == "leaks names"
    for inc in (first, second):
        [line] = [t for t in journal_texts(engine, inc) if t.startswith("Kill switch")]
        assert "paused" in line and ALICE in line and "leaks names" in line
        assert "enabled → paused" in line
    assert not any(t.startswith("Kill switch") for t in journal_texts(engine, other))
    assert not any(t.startswith("Kill switch") for t in journal_texts(engine, closed))

    clock.advance(minutes=30)
    with session_scope(engine) as s:
        again = switch.pause(s, workflow="email-summarizer", actor=BOB)
    assert not again.changed and again.state.changed_by == ALICE
    with session_scope(engine) as s:
        back = switch.resume(s, workflow="email-summarizer", actor=BOB, reason="fixed prompt")
    assert back.changed and back.state.enabled and back.state.version == 2
    rows = audit(engine)
    assert [(r.old_enabled, r.new_enabled, r.actor, r.reason) for r in rows] == [
        (True, False, ALICE, "leaks names"),
        (False, True, BOB, "fixed prompt"),
    ]
    assert rows[1].at - rows[0].at == clock.now - rows[0].at


def test_only_responders_flip_and_only_known_workflows(
    env: tuple[Any, IncidentService, KillSwitchService, FakeClock],
) -> None:
    engine, _, switch, _ = env
    with pytest.raises(NotAResponder), session_scope(engine) as s:
        switch.pause(s, workflow="email-summarizer", actor=CAROL)
    with pytest.raises(UnknownWorkflow, match="no workflow 'nope'"), session_scope(engine) as s:
        switch.pause(s, workflow="nope", actor=ALICE)
    assert audit(engine) == []


def test_the_policy_default_holds_until_someone_flips(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    data = example_policy().model_dump()
    data["workflows"]["weekly-report"]["kill_switch_default"] = "paused"
    policy = Policy.model_validate(data)
    switch = KillSwitchService(policy=policy, clock=FakeClock())
    with session_scope(engine) as s:
        state = switch.state(s, "weekly-report")
        assert not state.enabled and state.is_default
        assert not switch.pause(s, workflow="weekly-report", actor=ALICE).changed
    with session_scope(engine) as s:
        assert switch.resume(s, workflow="weekly-report", actor=ALICE).changed
    engine.dispose()


def test_a_p1_pauses_a_workflow_set_to_pause_on_p1(
    env: tuple[Any, IncidentService, KillSwitchService, FakeClock],
) -> None:
    engine, incidents, switch, _ = env
    harmful = AlertIn(
        fingerprint="h1",
        status=AlertStatus.FIRING,
        title="bot promised refunds",
        workflow="support-chatbot",
        evidence=Evidence(harmful_output=True, delivered_externally=True),
    )
    with session_scope(engine) as s:
        outcome = incidents.ingest(
            s,
            Notification(
                source="llm-observability", group_key="g1", title="harm", alerts=(harmful,)
            ),
        )
    with Session(engine) as s:
        state = switch.state(s, "support-chatbot")
    assert not state.enabled and state.changed_by == AUTO_PAUSE
    assert outcome.incident_id is not None
    assert any("automatically" in t for t in journal_texts(engine, outcome.incident_id))
    [row] = audit(engine)
    assert row.via == "auto" and row.incident_id == outcome.incident_id

    # a workflow not set for it is left running, even at P1
    with session_scope(engine) as s:
        inc = incidents.declare(s, title="x", actor=ALICE, workflow="email-summarizer")
        assert inc.id is not None
        inc_id = inc.id
    with session_scope(engine) as s:
        incidents.set_severity(
            s, incident_id=inc_id, actor=ALICE, severity=Severity.P1, reason="customers hit"
        )
    with Session(engine) as s:
        assert switch.state(s, "email-summarizer").enabled


def test_a_raise_to_p1_pauses_too(
    env: tuple[Any, IncidentService, KillSwitchService, FakeClock],
) -> None:
    engine, incidents, switch, _ = env
    with session_scope(engine) as s:
        inc = incidents.declare(s, title="x", actor=ALICE, workflow="support-chatbot")
        assert inc.id is not None
        inc_id = inc.id
    with Session(engine) as s:
        assert switch.state(s, "support-chatbot").enabled
    with session_scope(engine) as s:
        incidents.set_severity(
            s, incident_id=inc_id, actor=ALICE, severity=Severity.P1, reason="delivered"
        )
    with Session(engine) as s:
        assert not switch.state(s, "support-chatbot").enabled


@pytest.mark.both_backends
def test_concurrent_pauses_flip_once(
    env: tuple[Any, IncidentService, KillSwitchService, FakeClock],
) -> None:
    engine, _, switch, _ = env
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []

    def pause(actor: str) -> None:
        try:
            barrier.wait()
            with session_scope(engine) as s:
                results.append(switch.pause(s, workflow="email-summarizer", actor=actor).changed)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pause, args=(who,)) for who in (ALICE, BOB, ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert len(audit(engine)) == 1
