"""Scheduled handoff work: leases that ran out, SLA steps that came due (remind, on-call, page)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import Session, select

from bot.config import Policy
from bot.handoffs.domain import OPEN, HandoffStatus, SlaAction, SlaClock, SlaStep, due_sla_steps
from bot.handoffs.events import HandoffListener, HandoffReleased, HandoffSlaMissed, publish
from bot.handoffs.service.rows import reschedule, stages_done, steps
from storage.handoff_outbox import card_changed, iso, thread_line
from storage.models import HandoffRow

__all__ = ["HandoffTimers", "OnCall", "policy_oncall"]

# who is on call for a workflow now, as Slack user ids (the paging module provides the real one)
OnCall = Callable[[Session, str, datetime], list[str]]


def policy_oncall(policy: Policy) -> OnCall:
    """Return the stand-in on-call until schedules exist: the AI lead, else the responders."""

    def oncall(_session: Session, _workflow: str, _now: datetime) -> list[str]:
        for role in (policy.roles.ai_lead, policy.roles.responders):
            ids = [
                person.slack_id
                for member in role
                if (person := policy.people.get(member)) is not None and person.slack_id
            ]
            if ids:
                return ids
        return []

    return oncall


class HandoffTimers:
    """The scheduler's handoff jobs; `pagers` hear only the page step of a missed SLA."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        oncall: OnCall,
        listeners: Sequence[HandoffListener] = (),
        pagers: Sequence[HandoffListener] = (),
    ) -> None:
        self._clock = clock
        self._oncall = oncall
        self._listeners = list(listeners)
        self._pagers = list(pagers)

    def expire_leases(self, session: Session, *, limit: int = 100) -> int:
        """Return handoffs whose lease expired to the queue; return how many."""
        now = self._clock()
        rows = session.exec(
            select(HandoffRow)
            .where(
                HandoffRow.status == HandoffStatus.CLAIMED.value,
                HandoffRow.lease_until.is_not(None),  # type: ignore[union-attr]
                HandoffRow.lease_until <= now,  # type: ignore[operator]
            )
            .order_by(HandoffRow.lease_until)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            holder = row.claimed_by
            row.status = HandoffStatus.QUEUED.value
            row.claimed_by = None
            row.lease_until = None
            row.updated_at = now
            reschedule(row)
            session.add(row)
            thread_line(session, row, {"event": "expired", "actor": holder}, now)
            card_changed(session, row, now)
            publish(
                session,
                self._listeners,
                HandoffReleased(handoff=row, actor=holder, now=now, expired=True),
            )
        return len(rows)

    def sla_due(self, session: Session, *, limit: int = 100) -> int:
        """Take the SLA steps that are due: remind, mention on-call, page; return how many."""
        now = self._clock()
        rows = session.exec(
            select(HandoffRow)
            .where(
                HandoffRow.sla_next_at.is_not(None),  # type: ignore[union-attr]
                HandoffRow.sla_next_at <= now,  # type: ignore[operator]
                HandoffRow.status.in_([s.value for s in OPEN]),  # type: ignore[attr-defined]
            )
            .order_by(HandoffRow.sla_next_at)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        taken = 0
        for row in rows:
            for step in due_sla_steps(
                steps(row),
                status=HandoffStatus(row.status),
                stages_done=stages_done(row),
                now=now,
                ever_claimed=row.claimed_at is not None,
            ):
                self._take_step(session, row, step, now)
                taken += 1
            reschedule(row)
            row.updated_at = now
            session.add(row)
            card_changed(session, row, now)
        return taken

    def _take_step(self, session: Session, row: HandoffRow, step: SlaStep, now: datetime) -> None:
        if step.clock is SlaClock.CLAIM:
            row.sla_claim_stage = step.stage
            row.sla_claim_breached = True
            due = row.claim_due_at
        else:
            row.sla_decide_stage = step.stage
            row.sla_decide_breached = True
            due = row.decide_due_at
        oncall: list[str] = []
        if step.action is not SlaAction.REMIND:
            oncall = self._oncall(session, row.workflow, now)
        paged = step.action is SlaAction.PAGE and bool(self._pagers)
        thread_line(
            session,
            row,
            {
                "event": "sla",
                "clock": step.clock.value,
                "action": step.action.value,
                "due": iso(due),
                "at": iso(now),
                "holder": row.claimed_by if row.status == HandoffStatus.CLAIMED.value else None,
                "oncall": oncall,
                "paged": paged,
            },
            now,
        )
        event = HandoffSlaMissed(
            handoff=row, clock=step.clock, action=step.action, oncall=tuple(oncall), now=now
        )
        if step.action is SlaAction.PAGE:
            publish(session, self._pagers, event)
        publish(session, self._listeners, event)
