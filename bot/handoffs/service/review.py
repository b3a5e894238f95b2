"""Reviewing a handoff: the queue, claiming with an atomic lease, releasing, deciding.

Claims and decisions are single conditional UPDATEs checked by their row count, so two
reviewers clicking at once on any backend get exactly one winner.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.permissions import has_role
from bot.handoffs.domain import (
    OPEN,
    Decision,
    HandoffStatus,
    Tier,
    can_decide,
    decision_breaches,
    decision_of,
    holds_lease,
    lease_deadline,
)
from bot.handoffs.events import (
    HandoffClaimed,
    HandoffDecided,
    HandoffListener,
    HandoffReleased,
    publish,
)
from bot.handoffs.service.errors import NotAReviewer
from bot.handoffs.service.rows import TABLE, first_claim, load, refused, reschedule, takeable
from bot.services.errors import DomainError, ReasonRequired
from storage.handoff_outbox import callback_queued, card_changed, iso, thread_line
from storage.models import HandoffRow

__all__ = ["ClaimOutcome", "GroupMembers", "HandoffReview"]

GroupMembers = Mapping[str, Collection[str]] | None


@dataclass(frozen=True)
class ClaimOutcome:
    handoff: HandoffRow
    renewed: bool


class HandoffReview:
    """What reviewers do with a handoff; each change is one conditional UPDATE."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        listeners: Sequence[HandoffListener] = (),
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._listeners = list(listeners)

    def _require_reviewer(self, actor: str, action: str, groups: GroupMembers) -> None:
        if not has_role(self._policy, "reviewers", actor, groups):
            raise NotAReviewer(user=actor, action=action)

    def _changed(
        self, session: Session, row: HandoffRow, line: dict[str, Any], now: datetime
    ) -> None:
        session.add(row)
        thread_line(session, row, line, now)
        card_changed(session, row, now)

    # -- reading ----------------------------------------------------------------------------

    def get(self, session: Session, handoff_id: int) -> HandoffRow:
        return load(session, handoff_id)

    def queue(self, session: Session, *, limit: int = 20) -> tuple[list[HandoffRow], int]:
        """Return the open handoffs, humans first then oldest first, and how many there are."""
        open_values = [s.value for s in OPEN]
        rows = session.exec(
            select(HandoffRow)
            .where(HandoffRow.status.in_(open_values))  # type: ignore[attr-defined]
            .order_by(
                sa.case((TABLE.c.tier == Tier.HUMAN.value, 0), else_=1),
                HandoffRow.received_at,  # type: ignore[arg-type]
                HandoffRow.id,  # type: ignore[arg-type]
            )
            .limit(limit)
        ).all()
        total = int(
            session.execute(
                sa.select(sa.func.count()).select_from(TABLE).where(TABLE.c.status.in_(open_values))
            ).scalar_one()
        )
        return list(rows), total

    # -- claiming ---------------------------------------------------------------------------

    def claim(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> ClaimOutcome:
        """Take (or renew) the lease; HandoffHeld names the holder when someone else has it."""
        self._require_reviewer(actor, "claim handoffs", groups)
        now = self._clock()
        before = session.get(HandoffRow, handoff_id)
        renewed = before is not None and holds_lease(
            HandoffStatus(before.status), before.claimed_by, before.lease_until, actor, now
        )
        until = lease_deadline(now, self._policy.handoffs.lease)
        result = session.execute(
            sa.update(TABLE)
            .where(TABLE.c.id == handoff_id, takeable(actor, now))
            .values(
                status=HandoffStatus.CLAIMED.value,
                claimed_by=actor,
                claimed_at=first_claim(now),
                lease_until=until,
                updated_at=now,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise refused(session, handoff_id, now)
        row = load(session, handoff_id)
        reschedule(row)
        event = "renewed" if renewed else "claimed"
        self._changed(session, row, {"event": event, "actor": actor, "until": iso(until)}, now)
        publish(
            session,
            self._listeners,
            HandoffClaimed(handoff=row, actor=actor, now=now, renewed=renewed),
        )
        return ClaimOutcome(handoff=row, renewed=renewed)

    def release(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> HandoffRow:
        """Give the handoff back to the queue; only its holder can."""
        self._require_reviewer(actor, "release handoffs", groups)
        now = self._clock()
        c = TABLE.c
        result = session.execute(
            sa.update(TABLE)
            .where(
                c.id == handoff_id,
                c.status == HandoffStatus.CLAIMED.value,
                c.claimed_by == actor,
            )
            .values(
                status=HandoffStatus.QUEUED.value,
                claimed_by=None,
                lease_until=None,
                updated_at=now,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise refused(session, handoff_id, now)
        row = load(session, handoff_id)
        reschedule(row)
        self._changed(session, row, {"event": "released", "actor": actor}, now)
        publish(
            session,
            self._listeners,
            HandoffReleased(handoff=row, actor=actor, now=now, expired=False),
        )
        return row

    # -- deciding ---------------------------------------------------------------------------

    def may_decide(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> HandoffRow:
        """Return the handoff if `actor` may decide it now (before a form opens), else raise."""
        self._require_reviewer(actor, "decide handoffs", groups)
        now = self._clock()
        row = load(session, handoff_id)
        if not can_decide(HandoffStatus(row.status), row.claimed_by, row.lease_until, actor, now):
            raise refused(session, handoff_id, now)
        return row

    def decide(
        self,
        session: Session,
        *,
        handoff_id: int,
        actor: str,
        decision: Decision,
        edited_output: str | None = None,
        reason: str | None = None,
        groups: GroupMembers = None,
    ) -> HandoffRow:
        """Approve, approve with an edited output, or reject with a reason; deciding claims."""
        self._require_reviewer(actor, "decide handoffs", groups)
        reason = (reason or "").strip() or None
        if decision is Decision.REJECTED and reason is None:
            raise ReasonRequired("reject a handoff")
        if decision is Decision.EDITED and not (edited_output or "").strip():
            raise DomainError("Give the corrected output to approve an edit.")
        now = self._clock()
        before = load(session, handoff_id)
        final = decision_of(decision, edited_output, before.attempted_response)
        result = session.execute(
            sa.update(TABLE)
            .where(TABLE.c.id == handoff_id, takeable(actor, now))
            .values(
                status=final.value,
                decision=final.value,
                edited_output=edited_output if final is Decision.EDITED else None,
                reject_reason=reason if final is Decision.REJECTED else None,
                decided_by=actor,
                decided_at=now,
                claimed_by=actor,
                claimed_at=first_claim(now),
                lease_until=None,
                sla_next_at=None,
                updated_at=now,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise refused(session, handoff_id, now)
        row = load(session, handoff_id)
        claim_late, decide_late = decision_breaches(
            claimed_at=row.claimed_at,
            claim_due_at=row.claim_due_at,
            decide_due_at=row.decide_due_at,
            now=now,
        )
        row.sla_claim_breached = row.sla_claim_breached or claim_late
        row.sla_decide_breached = row.sla_decide_breached or decide_late
        line = {"event": "decided", "actor": actor, "decision": final.value, "reason": reason}
        self._changed(session, row, line, now)
        if row.callback_url:
            callback_queued(session, row, now)
        publish(
            session,
            self._listeners,
            HandoffDecided(handoff=row, actor=actor, decision=final, now=now),
        )
        return row
