"""The weekly digest: gather the week's facts, build the figures, claim each run exactly once."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.config import Policy
from bot.domain.digest import (
    AlertFact,
    Digest,
    HandoffFact,
    IncidentFact,
    Week,
    WorkflowFact,
    build_digest,
)
from bot.domain.numbers import number
from storage.models import AlertRow, DigestRunRow, HandoffRow, IncidentRow
from storage.outbox import enqueue

__all__ = ["DIGEST", "LATE_AFTER", "DigestService", "HandoffFacts", "StoredHandoffs"]

DIGEST = "chat.digest"
# a run claimed this long after its scheduled time was missed (the bot was down) and says so
LATE_AFTER = timedelta(minutes=15)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_INC: sa.Table = IncidentRow.__table__  # type: ignore[attr-defined]
_ALERT: sa.Table = AlertRow.__table__  # type: ignore[attr-defined]
_RUN: sa.Table = DigestRunRow.__table__  # type: ignore[attr-defined]
_HO: sa.Table = HandoffRow.__table__  # type: ignore[attr-defined]


class HandoffFacts(Protocol):
    """Where the handoff figures come from (the handoff queue, once it exists)."""

    def handoff_facts(self, session: Session, start: datetime, end: datetime) -> list[HandoffFact]:
        """Return the handoffs received in [start, end)."""
        ...

    def last_handoff_at(self, session: Session, before: datetime) -> dict[str, datetime]:
        """Return each workflow's latest handoff received before `before`."""
        ...


class StoredHandoffs:
    """The handoff queue's rows as digest facts: one indexed range query per week."""

    def handoff_facts(self, session: Session, start: datetime, end: datetime) -> list[HandoffFact]:
        rows = session.execute(
            sa.select(
                _HO.c.workflow,
                _HO.c.tier,
                _HO.c.confidence,
                _HO.c.received_at,
                _HO.c.claimed_at,
                _HO.c.decided_at,
                _HO.c.decision,
                _HO.c.sla_claim_breached,
                _HO.c.sla_decide_breached,
                _HO.c.ai_context,
            ).where(_HO.c.received_at >= start, _HO.c.received_at < end)
        )
        return [
            HandoffFact(
                workflow=r.workflow,
                tier=r.tier,
                confidence=r.confidence,
                received_at=r.received_at,
                claimed_at=r.claimed_at,
                decided_at=r.decided_at,
                decision=r.decision,
                sla_breached=bool(r.sla_claim_breached or r.sla_decide_breached),
                cost_usd=_float((r.ai_context or {}).get("cost_usd")),
            )
            for r in rows
        ]

    def last_handoff_at(self, session: Session, before: datetime) -> dict[str, datetime]:
        return {
            workflow: at
            for workflow, at in session.execute(
                sa.select(_HO.c.workflow, sa.func.max(_HO.c.received_at))
                .where(_HO.c.received_at < before)
                .group_by(_HO.c.workflow)
            ).all()
        }


def _float(value: Any) -> float | None:
    # a cost that could not be computed ("NaN") or is not finite adds nothing to the spend
    found = number(value)
    return found if found is not None and math.isfinite(found) else None


class DigestService:
    """Every method works inside the caller's session."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        handoffs: HandoffFacts | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._handoffs = handoffs
        self.zone = ZoneInfo(policy.timezone)

    @property
    def channel(self) -> str:
        return self._policy.digest.channel or self._policy.default_channel

    # -- the schedule ------------------------------------------------------------------------

    def last_slot(self, now: datetime) -> datetime:
        """Return the latest scheduled digest time at or before `now` (team time zone)."""
        local = now.astimezone(self.zone)
        weekday = _DAYS.index(self._policy.digest.day)
        day: date = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
        slot = datetime.combine(day, self._policy.digest.time, tzinfo=self.zone)
        if slot > local:
            slot = datetime.combine(
                day - timedelta(days=7), self._policy.digest.time, tzinfo=self.zone
            )
        return slot

    def week_of_slot(self, slot: datetime) -> Week:
        """The week a digest reports on: the one that ended by its slot (Monday → last week)."""
        return Week.containing(slot - timedelta(days=1), self.zone)

    def claim_due(self, session: Session) -> int:
        """Claim the latest due digest unless it exists already; queue its post. Return 0 or 1.

        The unique (period, channel) row is the claim: two replicas, or a restart at 09:00,
        cannot both insert it, so exactly one post is queued. A slot the bot was down for is
        claimed when it comes back, marked late. A slot that passed before the bot's first
        start (the channel has no digest yet, and the slot is already late) is claimed as
        `skipped`, and nothing is posted: a fresh install does not report on a week before it
        existed as a digest "late because the bot was down".
        """
        now = self._clock()
        slot = self.last_slot(now)
        week = self.week_of_slot(slot)
        late = now - slot > LATE_AFTER
        first = (
            late
            and session.execute(
                sa.select(_RUN.c.id).where(_RUN.c.channel == self.channel).limit(1)
            ).first()
            is None
        )
        try:
            with session.begin_nested():
                run_id = session.execute(
                    sa.insert(_RUN)
                    .values(
                        period=str(week),
                        channel=self.channel,
                        scheduled_for=slot,
                        claimed_at=now,
                        late=late,
                        status="skipped" if first else "queued",
                    )
                    .returning(_RUN.c.id)
                ).scalar_one()
        except IntegrityError:
            return 0
        if first:
            return 0
        enqueue(
            session,
            kind=DIGEST,
            idempotency_key=f"digest:{week}:{self.channel}",
            ordering_key=f"digest:{self.channel}",
            payload={"run_id": int(run_id), "period": str(week), "late": late},
            now=now,
        )
        return 1

    # -- the figures -------------------------------------------------------------------------

    def build(self, session: Session, week: Week, *, late: bool = False) -> Digest:
        """Gather the week's facts from storage and compute the digest."""
        start, end = week.bounds(self.zone)
        incidents = [
            IncidentFact(
                id=r.id,
                title=r.title,
                workflow=r.workflow,
                severity=r.severity,
                state=r.state,
                triggered_at=r.triggered_at,
                acknowledged_at=r.acknowledged_at,
                resolved_at=r.resolved_at,
                root_cause_at=r.root_cause_at,
                root_cause_deadline_at=r.root_cause_deadline_at,
            )
            for r in session.execute(
                sa.select(
                    _INC.c.id,
                    _INC.c.title,
                    _INC.c.workflow,
                    _INC.c.severity,
                    _INC.c.state,
                    _INC.c.triggered_at,
                    _INC.c.acknowledged_at,
                    _INC.c.resolved_at,
                    _INC.c.root_cause_at,
                    _INC.c.root_cause_deadline_at,
                ).where(
                    sa.or_(
                        sa.and_(_INC.c.triggered_at >= start, _INC.c.triggered_at < end),
                        sa.and_(_INC.c.resolved_at >= start, _INC.c.resolved_at < end),
                        sa.and_(_INC.c.state != "resolved", _INC.c.triggered_at < end),
                    )
                )
            )
        ]
        alerts = []
        for r in session.execute(
            sa.select(_ALERT.c.last_seen_at, _ALERT.c.signal, _ALERT.c.ai_context, _INC.c.workflow)
            .join(_INC, _INC.c.id == _ALERT.c.incident_id)
            .where(_ALERT.c.last_seen_at >= start, _ALERT.c.first_seen_at < end)
        ):
            signal = r.signal or {}
            alerts.append(
                AlertFact(
                    workflow=r.workflow,
                    at=r.last_seen_at,
                    signal_kind=signal.get("kind"),
                    value=_float(signal.get("value")),
                    baseline=_float(signal.get("baseline")),
                    cost_usd=_float((r.ai_context or {}).get("cost_usd")),
                )
            )
        last_alert = dict(
            session.execute(
                sa.select(_INC.c.workflow, sa.func.max(_ALERT.c.last_seen_at))
                .join(_INC, _INC.c.id == _ALERT.c.incident_id)
                .where(_ALERT.c.last_seen_at < end)
                .group_by(_INC.c.workflow)
            ).all()
        )
        handoffs: list[HandoffFact] = []
        last_handoff: dict[str, datetime] = {}
        if self._handoffs is not None:
            handoffs = self._handoffs.handoff_facts(session, start, end)
            last_handoff = self._handoffs.last_handoff_at(session, end)
        names = sorted({*self._policy.workflows, self._policy.default_workflow})
        workflows = []
        for name in names:
            wf = self._policy.workflow(name)
            seen = [t for t in (last_alert.get(name), last_handoff.get(name)) if t is not None]
            workflows.append(
                WorkflowFact(
                    name=name,
                    category=wf.category.value,
                    production=wf.production,
                    cost_baseline_usd_per_day=wf.cost_baseline_usd_per_day,
                    last_activity_at=max(seen) if seen else None,
                )
            )
        return build_digest(
            week=week,
            zone=self.zone,
            now=self._clock(),
            incidents=incidents,
            alerts=alerts,
            handoffs=handoffs,
            workflows=workflows,
            auto_threshold=self._policy.handoffs.auto_threshold,
            review_threshold=self._policy.handoffs.review_threshold,
            late=late,
        )

    def current_week(self) -> Week:
        """The week the next scheduled digest will report on, so far."""
        now = self._clock()
        return self.week_of_slot(self.last_slot(now) + timedelta(days=7))

    def run(self, session: Session, run_id: int) -> DigestRunRow | None:
        return session.get(DigestRunRow, run_id)
