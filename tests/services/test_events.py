"""Listeners hear every incident event inside the transaction that caused it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.domain.alerts import AlertIn, AlertStatus, Notification
from bot.domain.incidents import IncidentState
from bot.domain.severity import Evidence, Severity
from bot.services.events import (
    IncidentEvent,
    IncidentOpened,
    RootCauseRecorded,
    SeverityChanged,
    StateChanged,
)
from bot.services.incidents import IncidentService
from storage.db import create_db_engine, migrate, session_scope
from storage.models import IncidentRow
from tests.conftest import FakeClock, example_policy

ALICE = "U0ALICE001"


class Recorder:
    def __init__(self) -> None:
        self.events: list[IncidentEvent] = []

    def __call__(self, session: Session, event: IncidentEvent) -> None:
        assert session.in_transaction()
        self.events.append(event)


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[Any, IncidentService, Recorder]]:
    engine = create_db_engine(db_url)
    migrate(engine)
    recorder = Recorder()
    svc = IncidentService(policy=example_policy(), clock=FakeClock(), listeners=[recorder])
    yield engine, svc, recorder
    engine.dispose()


def test_a_lifecycle_tells_listeners_each_step(env: tuple[Any, IncidentService, Recorder]) -> None:
    engine, svc, rec = env
    with session_scope(engine) as s:
        inc = svc.declare(s, title="Refusals", actor=ALICE, severity=Severity.P3)
        assert inc.id is not None
        inc_id = inc.id
    with session_scope(engine) as s:
        svc.set_severity(s, incident_id=inc_id, actor=ALICE, severity=Severity.P2, reason="spread")
    with session_scope(engine) as s:
        svc.acknowledge(s, incident_id=inc_id, actor=ALICE)
    with session_scope(engine) as s:
        svc.record_root_cause(s, incident_id=inc_id, actor=ALICE, text="prompt v7")
    with session_scope(engine) as s:
        svc.resolve(s, incident_id=inc_id, actor=ALICE, summary="rolled back")

    kinds = [type(e).__name__ for e in rec.events]
    assert kinds == [
        "IncidentOpened",
        "SeverityChanged",
        "StateChanged",
        "RootCauseRecorded",
        "StateChanged",
    ]
    opened, sev, ack, cause, resolved = rec.events
    assert isinstance(opened, IncidentOpened) and opened.declared and opened.actor == ALICE
    assert isinstance(sev, SeverityChanged)
    assert (sev.previous, sev.current, sev.by_human, sev.reason) == (
        Severity.P3,
        Severity.P2,
        True,
        "spread",
    )
    assert isinstance(ack, StateChanged)
    assert (ack.previous, ack.current) == (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED)
    assert isinstance(cause, RootCauseRecorded) and cause.text == "prompt v7"
    assert isinstance(resolved, StateChanged)
    assert resolved.current is IncidentState.RESOLVED and resolved.why == "rolled back"


def test_an_alert_opens_and_an_automatic_rise_is_not_human(
    env: tuple[Any, IncidentService, Recorder],
) -> None:
    engine, svc, rec = env
    first = AlertIn(fingerprint="a1", status=AlertStatus.FIRING, title="errors")
    worse = AlertIn(
        fingerprint="a2",
        status=AlertStatus.FIRING,
        title="harm",
        evidence=Evidence(harmful_output=True, delivered_externally=True),
    )
    with session_scope(engine) as s:
        svc.ingest(
            s, Notification(source="alertmanager", group_key="g", title="t", alerts=(first,))
        )
    with session_scope(engine) as s:
        svc.ingest(
            s, Notification(source="alertmanager", group_key="g", title="t", alerts=(worse,))
        )
    opened, raised = rec.events
    assert isinstance(opened, IncidentOpened) and not opened.declared
    assert opened.actor == "alertmanager"
    assert isinstance(raised, SeverityChanged)
    assert raised.current is Severity.P1 and not raised.by_human


@pytest.mark.both_backends
def test_a_failing_listener_rolls_the_change_back(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)

    def broken(session: Session, event: IncidentEvent) -> None:
        raise RuntimeError("listener failed")

    svc = IncidentService(policy=example_policy(), clock=FakeClock(), listeners=[broken])
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        svc.declare(s, title="x", actor=ALICE)
    with Session(engine) as s:
        assert s.exec(select(IncidentRow)).all() == []
    engine.dispose()
