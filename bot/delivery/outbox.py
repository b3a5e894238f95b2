"""Record side effects in the caller's transaction; coalesce the debounced ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from storage.models import OutboxRow

__all__ = ["enqueue"]


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
) -> OutboxRow:
    """Add an outbox row, or fold it into a pending row with the same coalesce key.

    Folding keeps one pending row per coalesce key: a storm of updates becomes one delivery,
    and `merge_list` names a payload list (e.g. journal entry ids) the new items are appended to.
    """
    if coalesce_key is not None:
        pending = session.exec(
            select(OutboxRow)
            .where(OutboxRow.coalesce_key == coalesce_key, OutboxRow.status == "pending")
            .with_for_update()
        ).first()
        if pending is not None:
            if merge_list is not None:
                merged = dict(pending.payload)
                merged[merge_list] = [*merged.get(merge_list, []), *payload.get(merge_list, [])]
                pending.payload = merged
                session.add(pending)
            return pending
    row = OutboxRow(
        kind=kind,
        idempotency_key=idempotency_key,
        ordering_key=ordering_key,
        coalesce_key=coalesce_key,
        incident_id=incident_id,
        payload=payload,
        next_attempt_at=now + delay,
        created_at=now,
    )
    session.add(row)
    return row
