"""Handoffs (§8): receive, claim with an atomic lease, release, decide, expire, SLA clocks.

Every method works inside the caller's transaction and records its side effects (the review
card, thread lines, the callback to the agent) as outbox rows in it. Claims and decisions are
single conditional UPDATEs checked by their row count, so two reviewers clicking at once on any
backend get exactly one winner.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.permissions import has_role
from bot.handoffs.domain import (
    DECIDED,
    OPEN,
    Decision,
    HandoffIn,
    HandoffStatus,
    SlaAction,
    SlaClock,
    SlaStep,
    Tier,
    can_decide,
    confidence_band,
    decide_tier,
    decision_of,
    due_sla_steps,
    format_handoff_id,
    lease_deadline,
    next_sla_at,
    sla_deadlines,
    sla_steps,
)
from bot.handoffs.events import (
    HandoffClaimed,
    HandoffDecided,
    HandoffEvent,
    HandoffListener,
    HandoffQueued,
    HandoffReleased,
    HandoffSlaMissed,
    publish,
)
from bot.services.errors import DomainError, ReasonRequired
from bot.services.killswitch import KillSwitchService
from storage.models import HandoffRow, UTCDateTime
from storage.outbox import enqueue

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

CARD = "handoff.card"
THREAD = "handoff.thread"
CALLBACK = "handoff.callback"

GroupMembers = Mapping[str, Collection[str]] | None
# who is on call for a workflow now, as Slack user ids (the paging module provides the real one)
OnCall = Callable[[Session, str, datetime], list[str]]

_TABLE: sa.Table = HandoffRow.__table__  # type: ignore[attr-defined]


def _first_claim(now: datetime) -> Any:
    """The first claim's time stays; `now` is bound as a UTC column value, like every instant."""
    return sa.func.coalesce(_TABLE.c.claimed_at, sa.literal(now, UTCDateTime()))


# -- errors ------------------------------------------------------------------------------------


class HandoffNotFound(DomainError):
    def __init__(self, handoff_id: int) -> None:
        super().__init__(f"There is no handoff {format_handoff_id(handoff_id)}.")
        self.handoff_id = handoff_id


class NotAReviewer(DomainError):
    def __init__(self, user: str, action: str) -> None:
        super().__init__(
            f"Only reviewers can {action}; you are not listed under roles.reviewers in the "
            "policy file."
        )
        self.user = user
        self.action = action


class HandoffHeld(DomainError):
    """Someone else holds the lease."""

    def __init__(self, handoff_id: int, holder: str, until: datetime) -> None:
        super().__init__(
            f"{format_handoff_id(handoff_id)} is claimed by <@{holder}> until {until:%H:%M} UTC."
        )
        self.handoff_id = handoff_id
        self.holder = holder
        self.until = until


class AlreadyDecided(DomainError):
    def __init__(self, handoff_id: int, decision: str, by: str | None) -> None:
        who = f" by <@{by}>" if by else ""
        super().__init__(f"{format_handoff_id(handoff_id)} was already {decision}{who}.")
        self.handoff_id = handoff_id
        self.decision = decision


class NotReviewable(DomainError):
    """An auto-tier handoff: stored and counted, nobody reviews it."""

    def __init__(self, handoff_id: int) -> None:
        super().__init__(
            f"{format_handoff_id(handoff_id)} is in the auto tier: it is recorded, not reviewed."
        )
        self.handoff_id = handoff_id


class NotClaimed(DomainError):
    def __init__(self, handoff_id: int) -> None:
        super().__init__(f"{format_handoff_id(handoff_id)} is not claimed by you.")
        self.handoff_id = handoff_id


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What the webhook answers: the handoff and whether it already existed."""

    handoff: HandoffRow
    duplicate: bool

    @property
    def public_id(self) -> str:
        return format_handoff_id(self.handoff.id or 0)


@dataclass(frozen=True)
class ClaimOutcome:
    handoff: HandoffRow
    renewed: bool


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


# -- outbox helpers ----------------------------------------------------------------------------


def _ordering(handoff_id: int) -> str:
    # the handoff's own chat key: never an incident's, so neither holds the other up
    return f"handoff:{handoff_id}"


def card_posted(session: Session, handoff: HandoffRow, now: datetime) -> None:
    """Queue the first post of the review card."""
    assert handoff.id is not None
    enqueue(
        session,
        kind=CARD,
        idempotency_key=f"handoff-card:{handoff.id}:post",
        ordering_key=_ordering(handoff.id),
        payload={"handoff_id": handoff.id},
        now=now,
    )


def card_changed(session: Session, handoff: HandoffRow, now: datetime) -> None:
    """Queue a refresh of the review card (rendered from current state when delivered).

    Other modules call this after changing what the card shows (a ticket key, say).
    """
    assert handoff.id is not None
    enqueue(
        session,
        kind=CARD,
        # unique per refresh: two refreshes can share an instant
        idempotency_key=f"handoff-card:{handoff.id}:update:{uuid.uuid4().hex}",
        ordering_key=_ordering(handoff.id),
        payload={"handoff_id": handoff.id},
        now=now,
        coalesce_key=f"handoff-card-update:{handoff.id}",
    )


def thread_line(session: Session, handoff: HandoffRow, line: dict[str, Any], now: datetime) -> None:
    """Queue one line in the review card's thread."""
    assert handoff.id is not None
    enqueue(
        session,
        kind=THREAD,
        idempotency_key=f"handoff-thread:{handoff.id}:{line['event']}:{uuid.uuid4().hex}",
        ordering_key=_ordering(handoff.id),
        payload={"handoff_id": handoff.id, "line": line},
        now=now,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def callback_body(handoff: HandoffRow) -> dict[str, Any]:
    """Return what the agent receives at its callback URL once the handoff is decided."""
    public = format_handoff_id(handoff.id or 0)
    decision = handoff.decision
    output: str | None = None
    if decision == Decision.APPROVED.value:
        output = handoff.attempted_response
    elif decision == Decision.EDITED.value:
        output = handoff.edited_output
    return {
        "type": "handoff.decision",
        # the same on every delivery attempt: a handoff is decided once
        "idempotency_key": f"handoff-decision:{public}",
        "handoff_id": public,
        "handoff_idempotency_key": handoff.idempotency_key,
        "workflow": handoff.workflow,
        "tier": handoff.tier,
        "status": handoff.status,
        "decision": decision,
        "output": output,
        "edited_output": handoff.edited_output,
        "reason": handoff.reject_reason,
        "proposed_action": handoff.proposed_action if decision != "rejected" else None,
        "claimed_by": handoff.claimed_by,
        "decided_by": handoff.decided_by,
        "received_at": _iso(handoff.received_at),
        "decided_at": _iso(handoff.decided_at),
    }


# -- the service -------------------------------------------------------------------------------


class HandoffService:
    """The handoff use cases; time comes from `clock`, on-call from `oncall`."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        killswitch: KillSwitchService,
        oncall: OnCall | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._killswitch = killswitch
        self._oncall = oncall or policy_oncall(policy)
        self._listeners: list[HandoffListener] = []
        self._pagers: list[HandoffListener] = []

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    @property
    def policy(self) -> Policy:
        return self._policy

    def subscribe(self, listener: HandoffListener) -> None:
        """Tell `listener` every handoff event, inside the transaction that caused it."""
        self._listeners.append(listener)

    def add_pager(self, listener: HandoffListener) -> None:
        """Hand the page step of a missed SLA to `listener` (a HandoffSlaMissed, action page)."""
        self._pagers.append(listener)

    def use_oncall(self, oncall: OnCall) -> None:
        """Ask `oncall` who is on call (replacing the AI lead / responders stand-in)."""
        self._oncall = oncall

    def _publish(self, session: Session, event: HandoffEvent) -> None:
        publish(session, self._listeners, event)

    def _require_reviewer(self, actor: str, action: str, groups: GroupMembers) -> None:
        if not has_role(self._policy, "reviewers", actor, groups):
            raise NotAReviewer(user=actor, action=action)

    @property
    def review_channel(self) -> str:
        return self._policy.handoffs.review_channel or self._policy.default_channel

    def workflow_known(self, workflow: str) -> bool:
        return workflow in self._killswitch.known()

    # -- receiving --------------------------------------------------------------------------

    def find(self, session: Session, idempotency_key: str) -> HandoffRow | None:
        return session.exec(
            select(HandoffRow).where(HandoffRow.idempotency_key == idempotency_key)
        ).first()

    def receive(self, session: Session, *, handoff: HandoffIn, source: str) -> Receipt:
        """Store a handoff once per idempotency key; queue its card unless it is auto-tier."""
        existing = self.find(session, handoff.idempotency_key)
        if existing is not None:
            return Receipt(existing, duplicate=True)
        now = self._clock()
        settings = self._policy.handoffs
        decision = decide_tier(
            confidence=handoff.confidence,
            reason=handoff.reason,
            workflow_paused=self._killswitch.is_paused(session, handoff.workflow),
            auto_threshold=settings.auto_threshold,
            review_threshold=settings.review_threshold,
        )
        row = HandoffRow(
            idempotency_key=handoff.idempotency_key,
            source=source,
            workflow=handoff.workflow,
            agent_id=handoff.agent_id,
            agent_version=handoff.agent_version,
            reason=handoff.reason.value,
            confidence=handoff.confidence,
            confidence_band=confidence_band(handoff.confidence),
            tier=decision.tier.value,
            tier_reason=decision.why,
            status=(
                HandoffStatus.RECORDED if decision.tier is Tier.AUTO else HandoffStatus.QUEUED
            ).value,
            request=dict(handoff.request),
            attempted_response=handoff.attempted_response,
            error=dict(handoff.error) if handoff.error is not None else None,
            suggested_actions=list(handoff.suggested_actions),
            proposed_action=(
                dict(handoff.proposed_action) if handoff.proposed_action is not None else None
            ),
            context=dict(handoff.context),
            ai_context=dict(handoff.ai_context),
            callback_url=handoff.callback_url,
            received_at=now,
            updated_at=now,
        )
        # a tier the policy file gives no SLA runs without timers
        sla = settings.sla.get(decision.tier.value)  # type: ignore[call-overload]
        if decision.tier is not Tier.AUTO and sla is not None:
            row.claim_due_at, row.decide_due_at = sla_deadlines(
                now, sla.time_to_claim, sla.time_to_decide
            )
            row.sla_next_at = next_sla_at(
                self._steps(row), status=HandoffStatus.QUEUED, stages_done={}
            )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # the same key arrived at the same moment and the other request stored it first
            existing = self.find(session, handoff.idempotency_key)
            if existing is None:
                raise
            return Receipt(existing, duplicate=True)
        if decision.tier is not Tier.AUTO:
            card_posted(session, row, now)
            self._publish(session, HandoffQueued(handoff=row, now=now))
        return Receipt(row, duplicate=False)

    # -- reading ----------------------------------------------------------------------------

    def get(self, session: Session, handoff_id: int) -> HandoffRow:
        row = session.get(HandoffRow, handoff_id, populate_existing=True)
        if row is None:
            raise HandoffNotFound(handoff_id)
        return row

    def queue(self, session: Session, *, limit: int = 20) -> tuple[list[HandoffRow], int]:
        """Return the open handoffs, humans first then oldest first, and how many there are."""
        open_values = [s.value for s in OPEN]
        rows = session.exec(
            select(HandoffRow)
            .where(HandoffRow.status.in_(open_values))  # type: ignore[attr-defined]
            .order_by(
                sa.case((_TABLE.c.tier == Tier.HUMAN.value, 0), else_=1),
                HandoffRow.received_at,  # type: ignore[arg-type]
                HandoffRow.id,  # type: ignore[arg-type]
            )
            .limit(limit)
        ).all()
        total = int(
            session.execute(
                sa.select(sa.func.count())
                .select_from(_TABLE)
                .where(_TABLE.c.status.in_(open_values))
            ).scalar_one()
        )
        return list(rows), total

    # -- claiming ---------------------------------------------------------------------------

    def _takeable(self, actor: str, now: datetime) -> Any:
        """Rows `actor` may take now (`can_claim` as SQL): queued, held by `actor`, or expired."""
        c = _TABLE.c
        return sa.or_(
            c.status == HandoffStatus.QUEUED.value,
            sa.and_(
                c.status == HandoffStatus.CLAIMED.value,
                sa.or_(c.claimed_by == actor, c.lease_until.is_(None), c.lease_until <= now),
            ),
        )

    def _refusal(self, session: Session, handoff_id: int, now: datetime) -> DomainError:
        """Say why a conditional update matched nothing."""
        row = self.get(session, handoff_id)
        status = HandoffStatus(row.status)
        if status in DECIDED:
            return AlreadyDecided(handoff_id, row.status, row.decided_by)
        if status is HandoffStatus.RECORDED:
            return NotReviewable(handoff_id)
        if row.claimed_by and row.lease_until is not None and row.lease_until > now:
            return HandoffHeld(handoff_id, row.claimed_by, row.lease_until)
        return NotClaimed(handoff_id)

    def claim(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> ClaimOutcome:
        """Take (or renew) the lease; HandoffHeld names the holder when someone else has it."""
        self._require_reviewer(actor, "claim handoffs", groups)
        now = self._clock()
        before = session.get(HandoffRow, handoff_id)
        renewed = (
            before is not None
            and before.status == HandoffStatus.CLAIMED.value
            and before.claimed_by == actor
            and before.lease_until is not None
            and before.lease_until > now
        )
        until = lease_deadline(now, self._policy.handoffs.lease)
        result = session.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.id == handoff_id, self._takeable(actor, now))
            .values(
                status=HandoffStatus.CLAIMED.value,
                claimed_by=actor,
                claimed_at=_first_claim(now),
                lease_until=until,
                updated_at=now,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise self._refusal(session, handoff_id, now)
        row = self.get(session, handoff_id)
        self._reschedule(row)
        session.add(row)
        event = "renewed" if renewed else "claimed"
        thread_line(session, row, {"event": event, "actor": actor, "until": _iso(until)}, now)
        card_changed(session, row, now)
        self._publish(session, HandoffClaimed(handoff=row, actor=actor, now=now, renewed=renewed))
        return ClaimOutcome(handoff=row, renewed=renewed)

    def release(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> HandoffRow:
        """Give the handoff back to the queue; only its holder can."""
        self._require_reviewer(actor, "release handoffs", groups)
        now = self._clock()
        c = _TABLE.c
        result = session.execute(
            sa.update(_TABLE)
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
            raise self._refusal(session, handoff_id, now)
        row = self.get(session, handoff_id)
        self._reschedule(row)
        session.add(row)
        thread_line(session, row, {"event": "released", "actor": actor}, now)
        card_changed(session, row, now)
        self._publish(session, HandoffReleased(handoff=row, actor=actor, now=now, expired=False))
        return row

    def may_decide(
        self, session: Session, *, handoff_id: int, actor: str, groups: GroupMembers = None
    ) -> HandoffRow:
        """Return the handoff if `actor` may decide it now (before a form opens), else raise."""
        self._require_reviewer(actor, "decide handoffs", groups)
        now = self._clock()
        row = self.get(session, handoff_id)
        if not can_decide(HandoffStatus(row.status), row.claimed_by, row.lease_until, actor, now):
            raise self._refusal(session, handoff_id, now)
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
        before = self.get(session, handoff_id)
        final = decision_of(decision, edited_output, before.attempted_response)
        result = session.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.id == handoff_id, self._takeable(actor, now))
            .values(
                status=final.value,
                decision=final.value,
                edited_output=edited_output if final is Decision.EDITED else None,
                reject_reason=reason if final is Decision.REJECTED else None,
                decided_by=actor,
                decided_at=now,
                claimed_by=actor,
                claimed_at=_first_claim(now),
                lease_until=None,
                sla_next_at=None,
                updated_at=now,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise self._refusal(session, handoff_id, now)
        row = self.get(session, handoff_id)
        if row.claim_due_at is not None and row.claimed_at is not None:
            row.sla_claim_breached = row.sla_claim_breached or row.claimed_at > row.claim_due_at
        if row.decide_due_at is not None:
            row.sla_decide_breached = row.sla_decide_breached or now > row.decide_due_at
        session.add(row)
        thread_line(
            session,
            row,
            {"event": "decided", "actor": actor, "decision": final.value, "reason": reason},
            now,
        )
        card_changed(session, row, now)
        if row.callback_url:
            enqueue(
                session,
                kind=CALLBACK,
                idempotency_key=f"handoff-callback:{row.id}",
                # its own key: a callback target that is down holds up nothing else
                ordering_key=f"handoff-callback:{row.id}",
                payload={
                    "handoff_id": row.id,
                    "url": row.callback_url,
                    "source": row.source,
                    "body": callback_body(row),
                },
                now=now,
            )
        self._publish(session, HandoffDecided(handoff=row, actor=actor, decision=final, now=now))
        return row

    # -- scheduled work ---------------------------------------------------------------------

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
            self._reschedule(row)
            session.add(row)
            thread_line(session, row, {"event": "expired", "actor": holder}, now)
            card_changed(session, row, now)
            self._publish(
                session, HandoffReleased(handoff=row, actor=holder, now=now, expired=True)
            )
        return len(rows)

    def _steps(self, row: HandoffRow) -> list[SlaStep]:
        # the allowed times are read back from the row, so a policy change or a restart never
        # moves a clock that is already running
        steps: list[SlaStep] = []
        if row.claim_due_at is not None:
            steps += sla_steps(SlaClock.CLAIM, row.claim_due_at, row.claim_due_at - row.received_at)
        if row.decide_due_at is not None:
            steps += sla_steps(
                SlaClock.DECIDE, row.decide_due_at, row.decide_due_at - row.received_at
            )
        return steps

    @staticmethod
    def _done(row: HandoffRow) -> dict[SlaClock, int]:
        return {SlaClock.CLAIM: row.sla_claim_stage, SlaClock.DECIDE: row.sla_decide_stage}

    def _reschedule(self, row: HandoffRow) -> None:
        row.sla_next_at = next_sla_at(
            self._steps(row),
            status=HandoffStatus(row.status),
            stages_done=self._done(row),
            ever_claimed=row.claimed_at is not None,
        )

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
            status = HandoffStatus(row.status)
            for step in due_sla_steps(
                self._steps(row),
                status=status,
                stages_done=self._done(row),
                now=now,
                ever_claimed=row.claimed_at is not None,
            ):
                self._take_step(session, row, step, now)
                taken += 1
            self._reschedule(row)
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
                "due": _iso(due),
                "at": _iso(now),
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
        self._publish(session, event)
