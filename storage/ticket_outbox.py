"""Outbox rows for an incident's ticket: its creation, then every change in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.models import IncidentRow
from storage.outbox import enqueue

__all__ = ["TICKET_CREATE", "TICKET_UPDATE", "ordering", "queue_update"]

TICKET_CREATE = "ticket.create"
TICKET_UPDATE = "ticket.update"


def ordering(incident_id: int) -> str:
    """Return the ordering key all of an incident's ticket rows share."""
    return f"ticket:incident:{incident_id}"


def queue_update(
    session: Session, incident: IncidentRow, *, op: str, now: datetime, key: str, **payload: Any
) -> None:
    """Queue one change to the incident's ticket, after its creation and earlier changes."""
    assert incident.id is not None
    enqueue(
        session,
        kind=TICKET_UPDATE,
        idempotency_key=f"ticket:{incident.id}:{key}",
        ordering_key=ordering(incident.id),
        payload={"op": op, **payload},
        incident_id=incident.id,
        now=now,
    )
