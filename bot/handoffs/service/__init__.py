"""Handoffs (§8): receive, claim with an atomic lease, release, decide, expire, SLA clocks.

Every method works inside the caller's transaction and records its side effects (the review
card, thread lines, the callback to the agent) as outbox rows in it. `HandoffService` is the
one face of the use cases, which live beside it: intake (receiving), review (the queue,
claims, releases and decisions) and timers (expired leases and SLA steps); the decisions
themselves are pure functions in bot.handoffs.domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import Session

from bot.config import Policy
from bot.handoffs.domain import Decision, HandoffIn
from bot.handoffs.events import HandoffListener
from bot.handoffs.service.errors import (
    AlreadyDecided,
    HandoffHeld,
    HandoffNotFound,
    NotAReviewer,
    NotClaimed,
    NotReviewable,
)
from bot.handoffs.service.intake import HandoffIntake, Receipt
from bot.handoffs.service.review import ClaimOutcome, GroupMembers, HandoffReview
from bot.handoffs.service.timers import HandoffTimers, OnCall, policy_oncall
from bot.services.killswitch import KillSwitchService
from storage.handoff_outbox import (
    CALLBACK,
    CARD,
    THREAD,
    callback_body,
    card_changed,
    card_posted,
    thread_line,
)
from storage.models import HandoffRow

__all__ = [
    "CALLBACK",
    "CARD",
    "THREAD",
    "AlreadyDecided",
    "ClaimOutcome",
    "HandoffHeld",
    "HandoffNotFound",
    "HandoffService",
    "NotAReviewer",
    "NotClaimed",
    "NotReviewable",
    "OnCall",
    "Receipt",
    "callback_body",
    "card_changed",
    "card_posted",
    "policy_oncall",
    "thread_line",
]


class HandoffService:
    """The handoff use cases; time comes from `clock`, on-call from `oncall`.

    `listeners` hear every handoff event inside the transaction that caused it; `pagers` hear
    only the page step of a missed SLA. Without `oncall` the AI lead (else the responders)
    stands in for whoever is on call.
    """

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        killswitch: KillSwitchService,
        oncall: OnCall | None = None,
        listeners: Sequence[HandoffListener] = (),
        pagers: Sequence[HandoffListener] = (),
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._killswitch = killswitch
        self._intake = HandoffIntake(
            policy=policy, clock=clock, killswitch=killswitch, listeners=listeners
        )
        self._review = HandoffReview(policy=policy, clock=clock, listeners=listeners)
        self._timers = HandoffTimers(
            clock=clock,
            oncall=oncall or policy_oncall(policy),
            listeners=listeners,
            pagers=pagers,
        )

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def review_channel(self) -> str:
        return self._policy.handoffs.review_channel or self._policy.default_channel

    def workflow_known(self, workflow: str) -> bool:
        return workflow in self._killswitch.known()

    # -- receiving --------------------------------------------------------------------------

    def find(self, session: Session, idempotency_key: str) -> HandoffRow | None:
        return self._intake.find(session, idempotency_key)

    def receive(self, session: Session, *, handoff: HandoffIn, source: str) -> Receipt:
        """Store a handoff once per idempotency key; queue its card unless it is auto-tier."""
        return self._intake.receive(session, handoff=handoff, source=source)

    # -- reviewing --------------------------------------------------------------------------

    def get(self, session: Session, handoff_id: int) -> HandoffRow:
        return self._review.get(session, handoff_id)

    def queue(self, session: Session, *, limit: int = 20) -> tuple[list[HandoffRow], int]:
        """Return the open handoffs, humans first then oldest first, and how many there are."""
        return self._review.queue(session, limit=limit)

    def claim(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> ClaimOutcome:
        """Take (or renew) the lease; HandoffHeld names the holder when someone else has it."""
        return self._review.claim(session, handoff_id=handoff_id, actor=actor, groups=groups)

    def release(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> HandoffRow:
        """Give the handoff back to the queue; only its holder can."""
        return self._review.release(session, handoff_id=handoff_id, actor=actor, groups=groups)

    def may_decide(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> HandoffRow:
        """Return the handoff if `actor` may decide it now (before a form opens), else raise."""
        return self._review.may_decide(session, handoff_id=handoff_id, actor=actor, groups=groups)

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
        return self._review.decide(
            session,
            handoff_id=handoff_id,
            actor=actor,
            decision=decision,
            edited_output=edited_output,
            reason=reason,
            groups=groups,
        )

    # -- scheduled work ---------------------------------------------------------------------

    def expire_leases(self, session: Session, *, limit: int = 100) -> int:
        """Return handoffs whose lease expired to the queue; return how many."""
        return self._timers.expire_leases(session, limit=limit)

    def sla_due(self, session: Session, *, limit: int = 100) -> int:
        """Take the SLA steps that are due: remind, mention on-call, page; return how many."""
        return self._timers.sla_due(session, limit=limit)
