"""The group-committing writer: one failing notification never takes its batch down."""

from __future__ import annotations

import asyncio
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
