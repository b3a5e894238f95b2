"""Record side effects in the caller's transaction; coalesce the debounced ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from storage.models import OutboxRow

__all__ = ["enqueue"]

_PENDING = "outbox_pending_by_coalesce_key"


def enqueue(
    session: Session,
    *,
    kind: str,
    idempotency_key: str,
    ordering_key: str,
    payload: dict[str, Any],
    now: datetime,
    incident_id: int | None = None,
    delay: timedelta = timedelta(0),
    coalesce_key: str | None = None,
    merge_list: str | None = None,
) -> int:
    """Add an outbox row, or fold it into a pending row with the same coalesce key; return its id.

    Folding keeps one pending row per coalesce key: a storm of updates becomes one delivery,
    and `merge_list` names a payload list (e.g. journal entry ids) the new items are appended to.
    Core statements, not ORM objects: this runs for every notification of a storm.
    """
    table: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
    known: dict[str, tuple[int, dict[str, Any]]] = session.info.setdefault(_PENDING, {})
    if coalesce_key is not None:
        # within one transaction the pending row stays ours (locked or created here): look it
        # up once per transaction, not once per notification
        found = known.get(coalesce_key)
        if found is None:
            row = session.execute(
                sa.select(table.c.id, table.c.payload)
                .where(table.c.coalesce_key == coalesce_key, table.c.status == "pending")
                .with_for_update()
            ).first()
            if row is not None:
                found = (int(row[0]), dict(row[1]))
        if found is not None:
            row_id, current = found
            if merge_list is not None:
                current = {
                    **current,
                    merge_list: [*current.get(merge_list, []), *payload.get(merge_list, [])],
                }
                session.execute(
                    sa.update(table).where(table.c.id == row_id).values(payload=current)
                )
            known[coalesce_key] = (row_id, current)
            return row_id
    row_id = int(
        session.execute(
            sa.insert(table)
            .values(
                kind=kind,
                idempotency_key=idempotency_key,
                ordering_key=ordering_key,
                coalesce_key=coalesce_key,
                incident_id=incident_id,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=now + delay,
                created_at=now,
            )
            .returning(table.c.id)
        ).scalar_one()
    )
    if coalesce_key is not None:
        known[coalesce_key] = (row_id, dict(payload))
    return row_id


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, *_args: Any) -> None:
    # after the transaction the worker may claim those rows; a rolled-back savepoint may have
    # discarded one
    session.info.pop(_PENDING, None)
