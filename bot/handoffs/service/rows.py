"""The handoff table as the use cases need it: loading, the claimable-row condition, refusals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bot.handoffs.domain import (
    HandoffStatus,
    Refusal,
    SlaClock,
    SlaStep,
    next_sla_at,
    refusal,
    steps_for,
)
from bot.handoffs.service.errors import (
    AlreadyDecided,
    HandoffHeld,
    HandoffNotFound,
    NotClaimed,
    NotReviewable,
)
from bot.services.errors import DomainError
from storage.models import HandoffRow, UTCDateTime

__all__ = [
    "TABLE",
    "first_claim",
    "load",
    "refused",
    "reschedule",
    "stages_done",
    "steps",
    "takeable",
]

TABLE: sa.Table = HandoffRow.__table__  # type: ignore[attr-defined]


def first_claim(now: datetime) -> Any:
    """The first claim's time stays; `now` is bound as a UTC column value, like every instant."""
    return sa.func.coalesce(TABLE.c.claimed_at, sa.literal(now, UTCDateTime()))


def takeable(actor: str, now: datetime) -> Any:
    """Rows `actor` may take now (`can_claim` as SQL): queued, held by `actor`, or expired."""
    c = TABLE.c
    return sa.or_(
        c.status == HandoffStatus.QUEUED.value,
        sa.and_(
            c.status == HandoffStatus.CLAIMED.value,
            sa.or_(c.claimed_by == actor, c.lease_until.is_(None), c.lease_until <= now),
        ),
    )


def load(session: Session, handoff_id: int) -> HandoffRow:
    """Return the handoff as stored now; HandoffNotFound when there is none."""
    row = session.get(HandoffRow, handoff_id, populate_existing=True)
    if row is None:
        raise HandoffNotFound(handoff_id)
    return row


def refused(session: Session, handoff_id: int, now: datetime) -> DomainError:
    """Say why a conditional update matched nothing."""
    row = load(session, handoff_id)
    why = refusal(HandoffStatus(row.status), row.claimed_by, row.lease_until, now)
    if why is Refusal.DECIDED:
        return AlreadyDecided(handoff_id, row.status, row.decided_by)
    if why is Refusal.NOT_REVIEWABLE:
        return NotReviewable(handoff_id)
    if why is Refusal.HELD:
        assert row.claimed_by is not None and row.lease_until is not None
        return HandoffHeld(handoff_id, row.claimed_by, row.lease_until)
    return NotClaimed(handoff_id)


def steps(row: HandoffRow) -> list[SlaStep]:
    """Return the SLA steps of the handoff's clocks."""
    return steps_for(row.received_at, row.claim_due_at, row.decide_due_at)


def stages_done(row: HandoffRow) -> dict[SlaClock, int]:
    return {SlaClock.CLAIM: row.sla_claim_stage, SlaClock.DECIDE: row.sla_decide_stage}


def reschedule(row: HandoffRow) -> None:
    """Set when the scheduler must look at the handoff next."""
    row.sla_next_at = next_sla_at(
        steps(row),
        status=HandoffStatus(row.status),
        stages_done=stages_done(row),
        ever_claimed=row.claimed_at is not None,
    )
