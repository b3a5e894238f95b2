"""The change log in the database: who reported each version first, read back, claimed once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.domain.alerts import AlertIn, AlertStatus, Notification
from bot.domain.watch.history import Change, ChangeSource, Run, RunStatus, VersionKind
from bot.domain.watch.otlp import TOKEN_USAGE, Point, PointKind, Temporality, WatchMapping, read
from bot.services.incidents import IncidentService
from bot.services.watch_metrics import apply
from storage import watch
from storage.db import create_db_engine, session_scope
from tests.conftest import FakeClock, example_policy
from tests.support.databases import database

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
MODEL, PROMPT = VersionKind.MODEL, VersionKind.PROMPT
RUNS, OTLP, ALERT = ChangeSource.RUNS, ChangeSource.OTLP, ChangeSource.ALERT


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def run(run_id: str, at: datetime, workflow: str = "support-chatbot", **kw: object) -> Run:
    return Run(workflow=workflow, run_id=run_id, at=at, **kw)  # type: ignore[arg-type]


def test_changes_from_runs_keep_their_source_order_and_before(engine: Engine) -> None:
    with session_scope(engine) as session:
        watch.record_runs(
            session,
            [
                run("a", T0, model="gpt-4o-2024-08-06", prompt_version="summary-v12"),
                run("b", T0 + H, model="gpt-4o-2024-08-06", prompt_version="summary-v12"),
                run("c", T0 + 2 * H, model="gpt-4o-2024-11-20", prompt_version="summary-v13"),
                run("d", T0 + 3 * H, status=RunStatus.ERROR, error="upstream 500"),
                run("e", T0 + 3 * H, workflow="weekly-report", model="m1"),
            ],
        )
    with Session(engine) as session:
        every = watch.changes(session)
        mine = watch.changes(session, workflows=["support-chatbot"], since=T0 + H)
        early = watch.changes(session, until=T0 + H)
    assert [(c.workflow, c.kind, c.before, c.after, c.source) for c in every] == [
        ("support-chatbot", MODEL, None, "gpt-4o-2024-08-06", RUNS),
        ("support-chatbot", PROMPT, None, "summary-v12", RUNS),
        ("support-chatbot", MODEL, "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", RUNS),
        ("support-chatbot", PROMPT, "summary-v12", "summary-v13", RUNS),
        ("weekly-report", MODEL, None, "m1", RUNS),
    ]
    assert every[2].at == T0 + 2 * H
    # the span bounds the changes, not what their `before` is read from
    assert [c.describe() for c in mine] == [
        "model gpt-4o-2024-08-06 → gpt-4o-2024-11-20",
        "prompt summary-v12 → summary-v13",
    ]
    assert [c.after for c in early] == ["gpt-4o-2024-08-06", "summary-v12"]


def test_the_first_source_stays_when_another_input_reports_the_value_later(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        watch.saw_versions(
            session, [("support-chatbot", MODEL, "gpt-4o", T0)], source=ChangeSource.ALERT
        )
    with session_scope(engine) as session:
        watch.record_runs(session, [run("a", T0 - H, model="gpt-4o")])
    with Session(engine) as session:
        [change] = watch.changes(session)
        [version] = watch.versions(session)
    # the earlier run moves the first sighting back; the input that reported it first stays
    assert (change.at, change.source) == (T0 - H, ALERT)
    assert version.last_seen == T0


def test_a_model_first_seen_in_otlp_data_is_a_change_from_otlp(engine: Engine) -> None:
    now = T0 + 5 * H
    ns = int(now.timestamp()) * 1_000_000_000
    mapping = WatchMapping(workflows={"support-chatbot": "support-chatbot"})

    def tokens(model: str, at_ns: int) -> Point:
        return Point(
            metric=TOKEN_USAGE,
            kind=PointKind.HISTOGRAM,
            unit="{token}",
            temporality=Temporality.DELTA,
            start_ns=at_ns - 60 * 1_000_000_000,
            time_ns=at_ns,
            resource=(("service.name", "support-chatbot"),),
            attributes=(
                ("gen_ai.response.model", model),
                ("gen_ai.token.type", "input"),
            ),
            count=1,
            total=100,
        )

    with session_scope(engine) as session:
        watch.record_runs(session, [run("a", T0, model="gpt-4o-2024-08-06")])
    with session_scope(engine) as session:
        reading = read([tokens("gpt-4o-2024-11-20", ns)], mapping, now)
        apply(session, reading.measures, now=now)
    with Session(engine) as session:
        latest = watch.changes(session)[-1]
    assert latest == Change(
        "support-chatbot",
        MODEL,
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        datetime.fromtimestamp(ns / 1e9, tz=UTC),
        OTLP,
    )


def test_an_alerts_ai_context_records_its_model_and_prompt_version(engine: Engine) -> None:
    clock = FakeClock(T0 + 2 * H)
    service = IncidentService(policy=example_policy(), clock=clock)

    def alert(fingerprint: str, **context: str) -> AlertIn:
        return AlertIn(
            fingerprint=fingerprint,
            status=AlertStatus.FIRING,
            title="answers drift",
            workflow="support-chatbot",
            ai_context=context,
        )

    with session_scope(engine) as session:
        watch.record_runs(session, [run("a", T0, model="gpt-4o", prompt_version="v1")])
    with session_scope(engine) as session:
        first = Notification(
            source="default",
            group_key="g",
            title="drift",
            alerts=(alert("f1", **{"gen_ai.request.model": "gpt-4o", "prompt_version": "v2"}),),
        )
        service.ingest(session, first)
    clock.advance(minutes=10)
    with session_scope(engine) as session:
        joins = Notification(
            source="default",
            group_key="g",
            title="drift",
            alerts=(alert("f2", **{"gen_ai.response.model": "gpt-4o-2024-11-20"}),),
        )
        service.ingest(session, joins)
    with Session(engine) as session:
        found = watch.changes(session, since=T0 + H)
    assert [(c.kind, c.before, c.after, c.at, c.source) for c in found] == [
        (PROMPT, "v1", "v2", T0 + 2 * H, ALERT),
        (MODEL, "gpt-4o", "gpt-4o-2024-11-20", T0 + 2 * H + timedelta(minutes=10), ALERT),
    ]


def test_unjournalled_changes_are_claimed_once_even_by_two_sessions_at_once(
    engine: Engine, db_url: str
) -> None:
    with session_scope(engine) as session:
        watch.record_runs(
            session,
            [run(f"r{i}", T0 + i * H, model=f"m{i}", prompt_version=f"p{i}") for i in range(5)]
            + [run("e", T0, status=RunStatus.ERROR, error="boom")],
        )
    other = create_db_engine(db_url)
    barrier = threading.Barrier(2)
    claimed: list[list[Change]] = []
    errors: list[BaseException] = []

    def claim(eng: Engine) -> None:
        try:
            barrier.wait()
            with session_scope(eng) as session:
                claimed.append(watch.claim_unjournalled(session, now=T0 + 9 * H))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(e,)) for e in (engine, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    assert not errors
    counts = sorted(len(found) for found in claimed)
    assert counts == [0, 10]
    (everything,) = [found for found in claimed if found]
    assert [c.after for c in everything[:4]] == ["m0", "p0", "m1", "p1"]
    assert everything[2].before == "m0"
    with session_scope(engine) as session:
        assert watch.claim_unjournalled(session, now=T0 + 10 * H) == []
        # a version seen again is not news; a new one is
        watch.record_runs(session, [run("x", T0 + 10 * H, model="m0")])
        watch.record_runs(session, [run("y", T0 + 10 * H, model="m9")])
    with session_scope(engine) as session:
        [news] = watch.claim_unjournalled(session, now=T0 + 11 * H)
    assert (news.before, news.after) == ("m0", "m9")


def test_the_incident_view_holds_its_workflows_changes_of_the_24_h_before_it(
    engine: Engine,
) -> None:
    from storage.repositories import incident_view

    clock = FakeClock(T0 + 30 * H)
    service = IncidentService(policy=example_policy(), clock=clock)
    with session_scope(engine) as session:
        watch.record_runs(
            session,
            [
                run("a", T0, model="m1"),
                run("b", T0 + 5 * H, model="m2"),  # 25 h before: not listed
                run("c", T0 + 20 * H, model="m3"),
                run("d", T0 + 30 * H, prompt_version="p1"),  # the moment it is filed
                run("e", T0 + 20 * H, workflow="weekly-report", model="other"),
            ],
        )
        incident = service.declare(
            session, title="x", actor="U0ALICE001", workflow="support-chatbot"
        )
        assert incident.id is not None
        incident_id = incident.id
    clock.advance(hours=1)
    with session_scope(engine) as session:
        watch.record_runs(session, [run("f", T0 + 31 * H, model="m4")])  # after: not listed
    with Session(engine) as session:
        view = incident_view(session, incident_id)
    assert view is not None
    assert [(c.before, c.after) for c in view.changes] == [("m2", "m3"), (None, "p1")]


@pytest.mark.postgres
def test_the_claim_skips_a_version_a_writer_holds_and_takes_it_at_the_next_tick(
    tmp_path: Path,
) -> None:
    # PostgreSQL only: SQLite runs one writer at a time, so no transaction there holds a row
    # while another claims
    with database("postgres", tmp_path, migrated=True) as url:
        engine, other = create_db_engine(url), create_db_engine(url)
        try:
            with session_scope(engine) as session:
                watch.record_runs(session, [run("a", T0, model="m1")])
            with Session(engine) as writer:
                # a runs request adding to the pending version's row, not yet committed
                watch.record_runs(writer, [run("b", T0 + H, model="m1")])
                with session_scope(other) as session:
                    session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                    assert watch.claim_unjournalled(session, now=T0 + 2 * H) == []
                writer.commit()
            with session_scope(other) as session:
                [change] = watch.claim_unjournalled(session, now=T0 + 3 * H)
            assert change.after == "m1"
        finally:
            engine.dispose()
            other.dispose()
