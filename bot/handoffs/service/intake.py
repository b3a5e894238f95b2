"""Receiving a handoff: stored once per idempotency key, tiered, its SLA clocks started."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.config import Policy
from bot.handoffs.domain import (
    HandoffIn,
    HandoffStatus,
    Tier,
    confidence_band,
    decide_tier,
    format_handoff_id,
    initial_status,
    next_sla_at,
    sla_deadlines,
)
from bot.handoffs.events import HandoffListener, HandoffQueued, publish
from bot.handoffs.service.rows import steps
from bot.services.killswitch import KillSwitchService
from storage.handoff_outbox import card_posted
from storage.models import HandoffRow

__all__ = ["HandoffIntake", "Receipt"]


@dataclass(frozen=True)
class Receipt:
    """What the webhook answers: the handoff and whether it already existed."""

    handoff: HandoffRow
    duplicate: bool

    @property
    def public_id(self) -> str:
        return format_handoff_id(self.handoff.id or 0)


class HandoffIntake:
    """Store what agents hand over; queue a review card for every handoff a human must see."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        killswitch: KillSwitchService,
        listeners: Sequence[HandoffListener] = (),
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._killswitch = killswitch
        self._listeners = list(listeners)

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
        row = _row(handoff, source=source, tier=decision.tier, why=decision.why, now=now)
        # a tier the policy file gives no SLA runs without timers
        sla = settings.sla.get(decision.tier.value)  # type: ignore[call-overload]
        if decision.tier is not Tier.AUTO and sla is not None:
            row.claim_due_at, row.decide_due_at = sla_deadlines(
                now, sla.time_to_claim, sla.time_to_decide
            )
            row.sla_next_at = next_sla_at(steps(row), status=HandoffStatus.QUEUED, stages_done={})
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
            publish(session, self._listeners, HandoffQueued(handoff=row, now=now))
        return Receipt(row, duplicate=False)


def _row(handoff: HandoffIn, *, source: str, tier: Tier, why: str, now: datetime) -> HandoffRow:
    return HandoffRow(
        idempotency_key=handoff.idempotency_key,
        source=source,
        workflow=handoff.workflow,
        agent_id=handoff.agent_id,
        agent_version=handoff.agent_version,
        reason=handoff.reason.value,
        confidence=handoff.confidence,
        confidence_band=confidence_band(handoff.confidence),
        tier=tier.value,
        tier_reason=why,
        status=initial_status(tier).value,
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
