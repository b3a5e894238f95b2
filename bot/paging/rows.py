"""What the paging use cases read and write besides pages: escalation rows, overrides, journal."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.domain.incidents import JournalKind
from bot.paging.escalation import take_snapshot
from bot.paging.oncall import Override, on_call_at
from bot.paging.policy import PagingPolicy, Schedule
from storage import journal
from storage.models import EscalationRow, IncidentRow, OnCallOverrideRow

__all__ = ["SYSTEM", "escalation_row", "note", "on_call_now", "overrides"]

_OVERRIDES: sa.Table = OnCallOverrideRow.__table__  # type: ignore[attr-defined]

SYSTEM = "paging"  # the author of paging's journal entries


def escalation_row(
    session: Session, policy: PagingPolicy, incident: IncidentRow, now: datetime
) -> EscalationRow:
    """Return the incident's escalation row, locked; created with a snapshot if missing."""
    row = session.exec(
        select(EscalationRow).where(EscalationRow.incident_id == incident.id).with_for_update()
    ).first()
    if row is None:
        snapshot = take_snapshot(policy, incident.workflow)
        assert incident.id is not None
        row = EscalationRow(
            incident_id=incident.id,
            policy=snapshot.policy,
            snapshot=snapshot.to_json(),
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
    return row


def overrides(session: Session, schedule: str, now: datetime) -> list[Override]:
    """Return the overrides of `schedule` (and of every schedule) not over at `now`."""
    o = _OVERRIDES.c
    rows = session.execute(
        sa.select(o.id, o.person, o.starts_at, o.ends_at).where(
            o.ends_at > now, sa.or_(o.schedule == schedule, o.schedule.is_(None))
        )
    ).all()
    return [Override(r.person, r.starts_at, r.ends_at, made=r.id) for r in rows]


def on_call_now(
    session: Session, name: str, schedule: Schedule, timezone: str, now: datetime
) -> str | None:
    """Return who is on call in schedule `name` at `now`, overrides included."""
    return on_call_at(schedule, now, overrides(session, name, now), timezone)


def note(
    session: Session,
    incident: IncidentRow,
    text: str,
    now: datetime,
    *,
    kind: JournalKind = JournalKind.ACTION,
    author: str = SYSTEM,
) -> None:
    """Journal what paging did, in the caller's transaction."""
    journal.record(session, incident, kind=kind, text=text, author=author, now=now)
