"""Weekly digest runs: claimed exactly once per period and channel, late when the bot was down."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.domain.digest import Week
from bot.services.digest import DIGEST, DigestService
from storage.db import create_db_engine, migrate, session_scope
from storage.models import DigestRunRow, OutboxRow
from tests.conftest import FakeClock, example_policy
from tests.support.databases import database

# the example policy: Monday 09:00 Europe/Berlin, channel C0AIREVIEW1
MONDAY_0900 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def runs(engine: object) -> list[DigestRunRow]:
    with Session(engine) as s:  # type: ignore[arg-type]
        return list(s.exec(select(DigestRunRow)).all())


def test_the_slot_and_the_week_it_reports_on() -> None:
    clock = FakeClock(MONDAY_0900)
    service = DigestService(policy=example_policy(), clock=clock)
    assert service.last_slot(MONDAY_0900) == MONDAY_0900
    just_before = datetime(2026, 11, 23, 7, 59, tzinfo=UTC)
    assert service.last_slot(just_before) == datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
    assert service.week_of_slot(MONDAY_0900) == Week(2026, 47)
    # across the fall-back change, 09:00 Berlin is 08:00 UTC again, one week after 07:00 UTC
    after_dst = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    assert service.last_slot(after_dst) == after_dst
    assert service.last_slot(datetime(2026, 10, 26, 7, 59, tzinfo=UTC)) == datetime(
        2026, 10, 19, 7, 0, tzinfo=UTC
    )
    assert service.current_week() == Week(2026, 48)


@pytest.mark.both_backends
def test_on_time_once_and_late_after_downtime(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    clock = FakeClock(MONDAY_0900)
    clock.advance(seconds=20)
    service = DigestService(policy=example_policy(), clock=clock)
    with session_scope(engine) as s:
        assert service.claim_due(s) == 1
    clock.advance(minutes=30)
    with session_scope(engine) as s:
        assert service.claim_due(s) == 0  # the same week, already claimed
    [run] = runs(engine)
    assert (run.period, run.channel, run.late) == ("2026-W47", "C0AIREVIEW1", False)
    # the bot was down over the next Monday 09:00 and comes back at 14:10
    clock.now = datetime(2026, 11, 30, 13, 10, tzinfo=UTC)
    with session_scope(engine) as s:
        assert service.claim_due(s) == 1
    late = next(r for r in runs(engine) if r.period == "2026-W48")
    assert late.late and late.scheduled_for == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with Session(engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.kind == DIGEST)).all()
    assert sorted(r.idempotency_key for r in rows) == [
        "digest:2026-W47:C0AIREVIEW1",
        "digest:2026-W48:C0AIREVIEW1",
    ]
    engine.dispose()


@pytest.mark.postgres
def test_two_replicas_racing_at_nine_claim_one_digest(tmp_path: Path) -> None:
    with database("postgres", tmp_path) as url:
        setup = create_db_engine(url)
        migrate(setup)
        setup.dispose()
        clock = FakeClock(MONDAY_0900)
        replicas = [create_db_engine(url) for _ in range(4)]
        services = [DigestService(policy=example_policy(), clock=clock) for _ in replicas]
        barrier = threading.Barrier(len(replicas))
        claimed: list[int] = []
        errors: list[BaseException] = []

        def tick(engine: object, service: DigestService) -> None:
            try:
                barrier.wait()
                for _ in range(5):
                    with session_scope(engine) as s:  # type: ignore[arg-type]
                        claimed.append(service.claim_due(s))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=tick, args=pair)
            for pair in zip(replicas, services, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sum(claimed) == 1 and len(claimed) == 20
        assert len(runs(replicas[0])) == 1
        with Session(replicas[0]) as s:
            assert len(s.exec(select(OutboxRow).where(OutboxRow.kind == DIGEST)).all()) == 1
        for engine in replicas:
            engine.dispose()


@pytest.mark.both_backends
def test_a_fresh_install_posts_no_digest_of_a_week_before_its_first_start(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    # first started on a Wednesday: last Monday's digest would report on a week before it
    clock = FakeClock(datetime(2026, 11, 25, 13, 0, tzinfo=UTC))
    service = DigestService(policy=example_policy(), clock=clock)
    for _ in range(2):
        with session_scope(engine) as s:
            assert service.claim_due(s) == 0
    [skipped] = runs(engine)
    assert (skipped.period, skipped.status) == ("2026-W47", "skipped")
    # the next Monday's digest, on the week it was running for, is posted on time
    clock.now = datetime(2026, 11, 30, 8, 0, 30, tzinfo=UTC)
    with session_scope(engine) as s:
        assert service.claim_due(s) == 1
    with Session(engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.kind == DIGEST)).all()
    assert [r.idempotency_key for r in rows] == ["digest:2026-W48:C0AIREVIEW1"]
    engine.dispose()
