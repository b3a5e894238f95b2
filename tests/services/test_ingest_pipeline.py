"""The group-committing writer: one failing notification never takes its batch down."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlmodel import Session

from bot.domain.alerts import AlertIn, AlertStatus, Notification
from bot.metrics import Metrics
from bot.services.incidents import IncidentService, IngestOutcome
from bot.services.ingest import IngestPipeline
from storage.db import create_db_engine, migrate
from tests.conftest import FakeClock, example_policy


class Flaky(IncidentService):
    """Fails on notifications titled 'boom', like a bug hit by one odd payload."""

    def ingest(self, session: Session, n: Notification) -> IngestOutcome:
        if n.title == "boom":
            raise ValueError("boom")
        return super().ingest(session, n)


def note(key: str, title: str) -> Notification:
    alert = AlertIn(fingerprint=key, status=AlertStatus.FIRING, title=title)
    return Notification(source="default", group_key=key, title=title, alerts=(alert,))


@pytest.mark.both_backends
def test_a_failing_notification_fails_alone(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    service = Flaky(policy=example_policy(), clock=FakeClock())
    pipeline = IngestPipeline(engine=engine, service=service, metrics=Metrics())
    pipeline.start()

    async def send() -> list[Any]:
        notes = [note(f"k{i}", "boom" if i == 3 else f"t{i}") for i in range(8)]
        return await asyncio.gather(*(pipeline.submit(n) for n in notes), return_exceptions=True)

    try:
        results = asyncio.run(send())
    finally:
        pipeline.stop()
        engine.dispose()
    assert isinstance(results[3], ValueError)
    ok = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, IngestOutcome) and r.opened for r in ok)
    assert len({r.incident_id for r in ok}) == 7


def test_submit_without_a_running_writer_is_storage_unavailable(tmp_path: Any) -> None:
    from storage.db import StorageUnavailable

    engine = create_db_engine(f"sqlite:///{tmp_path}/x.db")
    pipeline = IngestPipeline(
        engine=engine,
        service=IncidentService(policy=example_policy(), clock=FakeClock()),
        metrics=Metrics(),
    )
    with pytest.raises(StorageUnavailable):
        asyncio.run(pipeline.submit(note("k", "t")))
    engine.dispose()


class Stalled(IncidentService):
    """Holds the writer inside `ingest` until released, like a database that stopped answering."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.applied: list[str] = []

    def ingest(self, session: Session, n: Notification) -> IngestOutcome:
        self.entered.set()
        self.release.wait(timeout=30)
        self.applied.append(n.title)
        return super().ingest(session, n)


def test_a_stalled_writer_is_storage_unavailable_in_bounded_time_and_stale_work_is_dropped(
    tmp_path: Any,
) -> None:
    from storage.db import StorageUnavailable

    engine = create_db_engine(f"sqlite:///{tmp_path}/x.db")
    migrate(engine)
    service = Stalled(policy=example_policy(), clock=FakeClock())
    pipeline = IngestPipeline(engine=engine, service=service, metrics=Metrics(), answer_within=0.5)
    pipeline.start()

    async def scenario() -> IngestOutcome:
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(pipeline.submit(note("k1", "in-flight")))
        assert await loop.run_in_executor(None, service.entered.wait, 10)
        with pytest.raises(StorageUnavailable, match=r"did not answer within 0\.5 s"):
            await pipeline.submit(note("k2", "queued"))  # behind the stalled batch
        with pytest.raises(StorageUnavailable, match=r"did not answer within 0\.5 s"):
            await first
        service.release.set()  # the database answers again
        return await pipeline.submit(note("k3", "after"))

    try:
        outcome = asyncio.run(scenario())
    finally:
        service.release.set()
        pipeline.stop()
        engine.dispose()
    assert outcome.opened
    # the batch in flight finished (its sender retries and finds a duplicate); the queued one,
    # already answered 503, was not applied behind the sender's back
    assert service.applied == ["in-flight", "after"]


def test_writes_that_deliver_nothing_leave_the_lanes_asleep(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    woken: list[int] = []
    service = IncidentService(policy=example_policy(), clock=FakeClock())
    pipeline = IngestPipeline(
        engine=engine, service=service, metrics=Metrics(), on_commit=lambda: woken.append(1)
    )
    pipeline.start()

    async def send() -> list[Any]:
        quiet = await pipeline.write(lambda s: "runs", label="runs", delivers=False)
        after_quiet = len(woken)
        loud = await pipeline.write(lambda s: "cards", label="cards")
        return [quiet, after_quiet, loud, len(woken)]

    try:
        answers = asyncio.run(send())
    finally:
        pipeline.stop()
        engine.dispose()
    assert answers == ["runs", 0, "cards", 1]


def together_behind_a_busy_writer(
    tmp_path: Any, items: tuple[str, ...]
) -> tuple[list[Any], list[list[str]]]:
    """Hold the writer in one write while `items` queue up as writes together (upper-cased
    in one call; an item "bad" fails its call); return every result and the calls made."""
    engine = create_db_engine(f"sqlite:///{tmp_path}/t.db")
    migrate(engine)
    service = IncidentService(policy=example_policy(), clock=FakeClock())
    pipeline = IngestPipeline(engine=engine, service=service, metrics=Metrics())
    calls: list[list[str]] = []
    gate, entered = threading.Event(), threading.Event()

    def hold(session: Session) -> str:
        entered.set()
        gate.wait(5)  # the writer is busy, so the next writes queue up into one batch
        return "held"

    def together(session: Session, batch: list[str]) -> list[str]:
        calls.append(list(batch))
        if "bad" in batch:
            raise ValueError("bad item")
        return [item.upper() for item in batch]

    async def send() -> list[Any]:
        first = asyncio.ensure_future(pipeline.write(hold, label="hold"))
        await asyncio.to_thread(entered.wait, 5)
        rest = [asyncio.ensure_future(pipeline.write_together(i, together, label=i)) for i in items]
        await asyncio.sleep(0)  # each queues its write before the writer is let go
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    pipeline.start()
    try:
        results = asyncio.run(send())
    finally:
        pipeline.stop()
        engine.dispose()
    return results, calls


def test_writes_together_share_one_call_per_batch_and_each_gets_its_own_result(
    tmp_path: Any,
) -> None:
    results, calls = together_behind_a_busy_writer(tmp_path, ("a", "b", "c"))
    assert results == ["held", "A", "B", "C"]
    assert calls == [["a", "b", "c"]]


def test_a_failing_batch_applies_writes_together_one_by_one(tmp_path: Any) -> None:
    results, calls = together_behind_a_busy_writer(tmp_path, ("a", "bad", "c"))
    assert results[0] == "held" and results[1] == "A" and results[3] == "C"
    assert isinstance(results[2], ValueError)
    assert calls[0] == ["a", "bad", "c"]
    assert sorted(calls[1:]) == [["a"], ["bad"], ["c"]]
