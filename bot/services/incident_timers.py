"""Time acting on incidents: severity reviews and the P2 root-cause deadline (§6)."""

from __future__ import annotations

from sqlmodel import Session

from bot.domain.incidents import escalate, review
from bot.services.incident_outcomes import Lifecycle
from storage import incidents as repository

__all__ = ["IncidentTimers"]


class IncidentTimers:
    """The scheduler's use cases; each claims due incidents with SKIP LOCKED, so replicas share."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._life = lifecycle

    def review_due(self, session: Session, *, limit: int = 100) -> int:
        """Re-evaluate open incidents whose severity may have risen with time; return how many."""
        now = self._life.clock()
        due = repository.due_for_review(session, now, limit)
        for row in due:
            assert row.id is not None
            before = repository.snapshot(row)
            firing = repository.firing_evidence(session, row.id)
            outcome = review(before, firing, policy=self._life.policy, now=now)
            self._life.carry_out(session, row, before, outcome, now)
        return len(due)

    def escalate_due(self, session: Session, *, limit: int = 100) -> int:
        """Escalate P2 incidents with no root cause after the deadline; return how many."""
        now = self._life.clock()
        due = repository.due_for_escalation(session, now, limit)
        for row in due:
            before = repository.snapshot(row)
            outcome = escalate(before, policy=self._life.policy, now=now)
            self._life.carry_out(session, row, before, outcome, now)
        return len(due)
