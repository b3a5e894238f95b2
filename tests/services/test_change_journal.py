"""Changes journalled into the workflow's open incidents: once, whoever runs the job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.domain.incidents import SYSTEM
from bot.domain.watch.history import Run
from bot.services.change_journal import ChangeJournal
from bot.services.incidents import IncidentService
from storage import watch
from storage.db import create_db_engine, session_scope
from storage.models import JournalRow, OutboxRow
from tests.conftest import FakeClock, example_policy

pytestmark = pytest.mark.both_backends

ALICE = "U0ALICE001"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def entries(engine: Engine, incident_id: int) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(JournalRow).where(JournalRow.incident_id == incident_id).order_by(JournalRow.id)  # type: ignore[arg-type]
        ).all()
        return [(r.kind, r.author, r.text) for r in rows if "changed" in r.text or "seen" in r.text]


def test_a_change_is_journalled_in_each_open_incident_of_its_workflow(engine: Engine) -> None:
    clock = FakeClock()
    policy = example_policy()
    incidents = IncidentService(policy=policy, clock=clock)
    job = ChangeJournal(policy=policy, clock=clock)
    start = clock.now
    with session_scope(engine) as session:
        watch.record_runs(
            session, [Run("email-summarizer", "a", start - timedelta(hours=3), model="m-old")]
        )
        assert job(session) == 0  # no incident yet: marked, nothing queued
    with session_scope(engine) as session:
        first = incidents.declare(session, title="a", actor=ALICE, workflow="email-summarizer")
        second = incidents.declare(session, title="b", actor=ALICE, workflow="email-summarizer")
        other = incidents.declare(session, title="c", actor=ALICE, workflow="weekly-report")
        closed = incidents.declare(session, title="d", actor=ALICE, workflow="email-summarizer")
        assert closed.id is not None
        incidents.resolve(session, incident_id=closed.id, actor=ALICE, summary="fine")
        ids = [first.id, second.id, other.id, closed.id]
    clock.advance(minutes=2)
    with session_scope(engine) as session:
        watch.record_runs(
            session,
            [Run("email-summarizer", "b", start + timedelta(minutes=1), model="m-new")],
        )
        outbox_before = len(session.exec(select(OutboxRow)).all())
        assert job(session) == 2
        assert len(session.exec(select(OutboxRow)).all()) == outbox_before + 2
    with session_scope(engine) as session:
        assert job(session) == 0  # journalled once
    expected = [("change", SYSTEM, "Model changed: m-old → m-new (seen in runs at 11:01 CET)")]
    first_id, second_id, other_id, closed_id = ids
    assert first_id and second_id and other_id and closed_id
    assert entries(engine, first_id) == expected
    assert entries(engine, second_id) == expected
    assert entries(engine, other_id) == []
    assert entries(engine, closed_id) == []


def test_two_replicas_journal_a_change_once(engine: Engine, db_url: str) -> None:
    clock = FakeClock()
    policy = example_policy()
    incidents = IncidentService(policy=policy, clock=clock)
    with session_scope(engine) as session:
        incident = incidents.declare(session, title="a", actor=ALICE, workflow="support-chatbot")
        assert incident.id is not None
        incident_id = incident.id
        watch.record_runs(
            session,
            [
                Run("support-chatbot", "a", clock.now, prompt_version="summary-v12"),
                Run("support-chatbot", "b", clock.now, model="gpt-4o"),
            ],
        )
    other = create_db_engine(db_url)
    barrier = threading.Barrier(2)
    queued: list[int] = []
    errors: list[BaseException] = []

    def tick(eng: Engine) -> None:
        try:
            job = ChangeJournal(policy=policy, clock=clock)
            barrier.wait()
            with session_scope(eng) as session:
                queued.append(job(session))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(e,)) for e in (engine, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    assert not errors
    assert sorted(queued) == [0, 2]
    assert sorted(text for _, _, text in entries(engine, incident_id)) == [
        "Model first seen: gpt-4o (seen in runs at 11:00 CET)",
        "Prompt version first seen: summary-v12 (seen in runs at 11:00 CET)",
    ]
