"""People acting on incidents: declare, ack, mitigate, resolve, reopen, notes, root cause, severity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.domain.incidents import JournalKind
from bot.domain.severity import Severity
from bot.services.errors import InvalidTransition, NotAResponder, ReasonRequired
from bot.services.incidents import IncidentService
from storage.db import create_db_engine, migrate, session_scope
from storage.models import AlertGroupRow, IncidentRow, JournalRow, OutboxRow
from tests.conftest import FakeClock, example_policy

ALICE = "U0ALICE001"  # responder in the example policy
CAROL = "U0CAROL003"  # founder, not a responder
STRANGER = "U0NOBODY99"


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[Any, IncidentService, FakeClock]]:
    engine = create_db_engine(db_url)
    migrate(engine)
    clock = FakeClock()
    yield engine, IncidentService(policy=example_policy(), clock=clock), clock
    engine.dispose()


def journal(engine: Any, incident_id: int) -> list[JournalRow]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(JournalRow)
                .where(JournalRow.incident_id == incident_id)
                .order_by(JournalRow.id)
            ).all()
        )


def fresh(engine: Any, incident_id: int) -> IncidentRow:
    with Session(engine) as s:
        row = s.get(IncidentRow, incident_id)
        assert row is not None
        return row


def test_the_lifecycle_records_milestones_and_journal(
    env: tuple[Any, IncidentService, FakeClock],
) -> None:
    engine, svc, clock = env
    with session_scope(engine) as s:
        inc = svc.declare(
            s, title="Bot leaks PII", actor=ALICE, severity=Severity.P2, workflow="support-chatbot"
        )
        inc_id = inc.id
    assert inc_id is not None
    row = fresh(engine, inc_id)
    assert (row.severity, row.workflow, row.category) == (
        "P2",
        "support-chatbot",
        "customer-facing",
    )
    assert row.root_cause_deadline_at is not None  # a P2 starts the four-hour clock
    clock.advance(minutes=3)
    with session_scope(engine) as s:
        svc.acknowledge(s, incident_id=inc_id, actor=STRANGER)
        svc.acknowledge(s, incident_id=inc_id, actor=ALICE)  # a second ack changes nothing
    row = fresh(engine, inc_id)
    assert row.state == "acknowledged" and row.commander == STRANGER
    assert row.acknowledged_at == clock.now
    clock.advance(minutes=10)
    with session_scope(engine) as s:
        svc.note(s, incident_id=inc_id, actor=STRANGER, text="prompt v7 shipped at 09:40")
        svc.record_root_cause(
            s, incident_id=inc_id, actor=ALICE, text="prompt v7 drops the PII filter"
        )
        svc.mitigate(s, incident_id=inc_id, actor=ALICE)
    row = fresh(engine, inc_id)
    assert row.root_cause_deadline_at is None and row.root_cause_at == clock.now
    assert row.state == "mitigated" and row.mitigated_at == clock.now
    clock.advance(minutes=5)
    with session_scope(engine) as s:
        svc.resolve(s, incident_id=inc_id, actor=ALICE, summary="rolled back to v6")
    row = fresh(engine, inc_id)
    assert row.state == "resolved" and row.resolved_by == ALICE
    assert row.resolution_summary == "rolled back to v6"
    kinds = [(e.kind, e.author) for e in journal(engine, inc_id)]
    assert (JournalKind.ROOT_CAUSE.value, ALICE) in kinds
    assert (JournalKind.OBSERVATION.value, STRANGER) in kinds
    texts = [e.text for e in journal(engine, inc_id)]
    assert "State triggered → acknowledged" in texts
    assert "State mitigated → resolved: rolled back to v6" in texts
    with Session(engine) as s:
        # every change posts to the thread and refreshes the card
        assert len(s.exec(select(OutboxRow)).all()) >= len(texts)


def test_permissions_are_enforced_with_a_reason(
    env: tuple[Any, IncidentService, FakeClock],
) -> None:
    engine, svc, _ = env
    with session_scope(engine) as s:
        inc_id = svc.declare(s, title="x", actor=STRANGER, severity=Severity.P1).id
    assert inc_id is not None
    with session_scope(engine) as s, pytest.raises(NotAResponder, match="Only responders"):
        svc.resolve(s, incident_id=inc_id, actor=CAROL)
    with session_scope(engine) as s, pytest.raises(NotAResponder):
        svc.set_severity(s, incident_id=inc_id, actor=STRANGER, severity=Severity.P3, reason="meh")
    # raising needs no role; a Slack user group listed under responders counts
    with session_scope(engine) as s:
        svc.set_severity(
            s,
            incident_id=inc_id,
            actor=STRANGER,
            severity=Severity.P3,
            reason="false alarm",
            groups={"S0RESPOND1": {STRANGER}},
        )
    assert fresh(engine, inc_id).severity == "P3"
    with session_scope(engine) as s, pytest.raises(ReasonRequired):
        svc.set_severity(s, incident_id=inc_id, actor=ALICE, severity=Severity.P2, reason=" ")


def test_invalid_transitions_and_reopen(env: tuple[Any, IncidentService, FakeClock]) -> None:
    engine, svc, _ = env
    with session_scope(engine) as s:
        inc_id = svc.declare(s, title="x", actor=ALICE).id
    assert inc_id is not None
    with session_scope(engine) as s:
        svc.resolve(s, incident_id=inc_id, actor=ALICE)
    for action in (
        lambda s: svc.acknowledge(s, incident_id=inc_id, actor=ALICE),
        lambda s: svc.mitigate(s, incident_id=inc_id, actor=ALICE),
        lambda s: svc.resolve(s, incident_id=inc_id, actor=ALICE),
    ):
        with session_scope(engine) as s, pytest.raises(InvalidTransition):
            action(s)
    with session_scope(engine) as s, pytest.raises(ReasonRequired):
        svc.reopen(s, incident_id=inc_id, actor=ALICE, reason="")
    with session_scope(engine) as s:
        svc.reopen(s, incident_id=inc_id, actor=ALICE, reason="errors are back")
    row = fresh(engine, inc_id)
    assert row.state == "triggered" and row.resolved_at is None


def test_resolving_by_hand_closes_the_alert_group(
    env: tuple[Any, IncidentService, FakeClock],
) -> None:
    from bot.domain.alerts import AlertIn, AlertStatus, Notification

    engine, svc, _ = env
    alert = AlertIn(fingerprint="fp", status=AlertStatus.FIRING, title="t")
    n = Notification(source="default", group_key="g", title="t", alerts=(alert,))
    with session_scope(engine) as s:
        first = svc.ingest(s, n)
    assert first.incident_id is not None
    with session_scope(engine) as s:
        svc.resolve(s, incident_id=first.incident_id, actor=ALICE)
    with Session(engine) as s:
        assert s.exec(select(AlertGroupRow)).all() == []
    with session_scope(engine) as s:
        again = svc.ingest(s, n)
    assert again.opened and again.incident_id != first.incident_id


@pytest.mark.parametrize(
    ("text", "kind", "rest"),
    [
        ("action: restarted worker-1", JournalKind.ACTION, "restarted worker-1"),
        ("Root cause: prompt v7", JournalKind.ROOT_CAUSE, "prompt v7"),
        ("result: errors back to 1%", JournalKind.RESULT, "errors back to 1%"),
        ("decision: keep it paused", JournalKind.DECISION, "keep it paused"),
        ("errors at 10:32: still high", JournalKind.OBSERVATION, "errors at 10:32: still high"),
        ("action:", JournalKind.OBSERVATION, "action:"),
    ],
)
def test_thread_replies_may_name_their_journal_kind(
    text: str, kind: JournalKind, rest: str
) -> None:
    from bot.services.incidents import journal_kind_of

    assert journal_kind_of(text) == (kind, rest)
