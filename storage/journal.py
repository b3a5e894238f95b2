"""Write journal entries and the outbox rows that post them to the incident thread."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from bot.domain.incidents import JournalKind
from storage.models import IncidentRow, JournalRow
from storage.outbox import enqueue

__all__ = ["CARD", "JOURNAL", "REPORT", "card_changed", "card_posted", "record", "report"]

CARD = "chat.card"
JOURNAL = "chat.journal"
REPORT = "chat.report"
CARD_DEBOUNCE = timedelta(seconds=2)
JOURNAL_BATCH = timedelta(seconds=2)


def _ordering(incident_id: int) -> str:
    return f"incident:{incident_id}"


def record(
    session: Session,
    incident: IncidentRow,
    *,
    kind: JournalKind,
    text: str,
    author: str,
    now: datetime,
    batch: bool = False,
) -> int:
    """Store a journal entry, queue its post to the thread and return the entry's id.

    `batch` entries (alerts joining during a storm) share one debounced thread post.
    """
    assert incident.id is not None
    # a Core insert: no ORM object or flush per entry on the ingest hot path
    table: sa.Table = JournalRow.__table__  # type: ignore[attr-defined]
    entry_id: int = session.execute(
        sa.insert(table)
        .values(
            incident_id=incident.id,
            kind=kind.value,
            text=text,
            author=author,
            via="bot",
            created_at=now,
        )
        .returning(table.c.id)
    ).scalar_one()
    enqueue(
        session,
        kind=JOURNAL,
        idempotency_key=f"journal:{entry_id}",
        ordering_key=_ordering(incident.id),
        payload={"entry_ids": [entry_id]},
        incident_id=incident.id,
        now=now,
        delay=JOURNAL_BATCH if batch else timedelta(0),
        coalesce_key=f"journal-batch:{incident.id}" if batch else None,
        merge_list="entry_ids",
    )
    return entry_id


def card_posted(session: Session, incident: IncidentRow, now: datetime) -> None:
    """Queue the first post of the incident's card."""
    assert incident.id is not None
    enqueue(
        session,
        kind=CARD,
        idempotency_key=f"card:{incident.id}:post",
        ordering_key=_ordering(incident.id),
        payload={},
        incident_id=incident.id,
        now=now,
    )


def card_changed(session: Session, incident: IncidentRow, now: datetime) -> None:
    """Queue a debounced card refresh; the card is rendered from current state at delivery."""
    assert incident.id is not None
    enqueue(
        session,
        kind=CARD,
        idempotency_key=f"card:{incident.id}:update:{now.timestamp():.6f}",
        ordering_key=_ordering(incident.id),
        payload={},
        incident_id=incident.id,
        now=now,
        delay=CARD_DEBOUNCE,
        coalesce_key=f"card-update:{incident.id}",
    )


def report(session: Session, incident: IncidentRow, *, name: str, now: datetime) -> None:
    """Queue a report (`timeline` or `postmortem`) posted in the incident thread."""
    assert incident.id is not None
    enqueue(
        session,
        kind=REPORT,
        idempotency_key=f"report:{incident.id}:{name}:{now.timestamp():.6f}",
        ordering_key=_ordering(incident.id),
        payload={"report": name},
        incident_id=incident.id,
        now=now,
    )
