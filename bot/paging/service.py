"""Paging: severity decides who is reached (§6); escalation runs from the database (§12).

- P1: the workflow's escalation starts at once (day or night) and the AI lead is notified (Slack
  DM and a mention in the thread); with external impact the founder is notified two hours
  later unless the incident is resolved by then (or the escalation reached them already).
- P2: the AI lead is notified; the escalation pages only during business hours (a step due
  outside them waits for the next opening).
- P3: nobody is paged.
- A severity raised by hand or by the rules starts paging, or makes a business-hours escalation
  page at once. Acknowledging, mitigating or resolving stops it; PagerDuty, Opsgenie and the
  webhook hear about acknowledgement and resolution when the incident was paged through them.

Every decision is made inside the transaction of the incident change (a listener) or of the
scheduler job, and leaves page records, outbox rows and journal entries in that transaction: a
crash loses nothing, a restart repeats nothing. The job takes the incident's row lock before
the escalation's, as the incident use cases do, so replicas never page twice and never deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.domain.incidents import IncidentState, JournalKind
from bot.domain.severity import Severity, is_higher
from bot.paging.channels import PROVIDER_CHANNELS
from bot.paging.desk import OnCallAnswer, OnCallDesk, UnknownPerson
from bot.paging.escalation import EscalationState, Snapshot, due_now
from bot.paging.notices import fire_step, founder_reached, notify_ai_lead, notify_founder
from bot.paging.policy import PagingPolicy
from bot.paging.rows import SYSTEM, escalation_row, note
from bot.services.events import IncidentEvent, IncidentOpened, SeverityChanged, StateChanged
from storage.models import EscalationRow, IncidentRow, OnCallOverrideRow
from storage.pages import queue_sync

__all__ = ["FOUNDER_WITHIN", "SYSTEM", "OnCallAnswer", "PagingService", "UnknownPerson"]

log = logging.getLogger(__name__)

_ESCALATIONS: sa.Table = EscalationRow.__table__  # type: ignore[attr-defined]

FOUNDER_WITHIN = timedelta(hours=2)
STOPPING = (IncidentState.ACKNOWLEDGED, IncidentState.MITIGATED, IncidentState.RESOLVED)


class PagingService:
    """The paging listener, the due-escalation job, and the paging commands."""

    def __init__(self, *, policy: PagingPolicy, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._clock = clock
        self._desk = OnCallDesk(policy=policy, clock=clock)

    # -- the listener -----------------------------------------------------------------------

    def __call__(self, session: Session, event: IncidentEvent) -> None:
        """React to an incident event inside its transaction."""
        if isinstance(event, IncidentOpened):
            row = escalation_row(session, self._policy, event.incident, event.now)
            self._apply(session, event.incident, row, Severity(event.incident.severity), event.now)
        elif isinstance(event, SeverityChanged):
            self._severity_changed(session, event)
        elif isinstance(event, StateChanged):
            self._state_changed(session, event)

    def _apply(
        self,
        session: Session,
        incident: IncidentRow,
        row: EscalationRow,
        sev: Severity,
        now: datetime,
    ) -> None:
        """Page as the severity calls for: start, or make a business-hours escalation urgent."""
        if sev is Severity.P3:
            return
        snapshot = Snapshot.from_json(row.snapshot)
        paged: set[str] = set()
        if IncidentState(incident.state) is IncidentState.TRIGGERED:
            business_only = sev is Severity.P2
            if row.status != "active":
                self._start(session, incident, row, snapshot, now, business_only)
            elif row.business_hours_only and not business_only:
                row.business_hours_only = False
                row.next_at = now
                note(
                    session,
                    incident,
                    f"Now {sev.value}: paging goes on at once, day or night.",
                    now,
                )
            paged = self._advance(session, incident, row, snapshot, now)
        notify_ai_lead(session, self._policy, incident, snapshot, sev, now, skip=paged)
        if (
            sev is Severity.P1
            and incident.impact_external
            and row.founder_due_at is None
            and not founder_reached(session, incident, snapshot)
            and snapshot.roles.get("founder")
        ):
            row.founder_due_at = now + FOUNDER_WITHIN
            note(
                session,
                incident,
                "P1 with external impact: the founder is notified at "
                f"{row.founder_due_at:%H:%M} UTC unless the incident is resolved by then.",
                now,
            )
        row.updated_at = now
        session.add(row)

    def _start(
        self,
        session: Session,
        incident: IncidentRow,
        row: EscalationRow,
        snapshot: Snapshot,
        now: datetime,
        business_only: bool,
    ) -> None:
        row.run += 1
        row.status = "active"
        row.step, row.round, row.next_at = 0, 0, now
        row.business_hours_only = business_only
        row.reason = None
        steps = len(snapshot.steps)
        repeat = f", repeated {snapshot.repeat} time(s)" if snapshot.repeat else ""
        hours = " Pages go out only in business hours (P2)." if business_only else ""
        note(
            session,
            incident,
            f"Paging started: escalation policy {snapshot.policy} ({steps} step(s){repeat}).{hours}",
            now,
        )

    def _stop(
        self, session: Session, incident: IncidentRow, row: EscalationRow, why: str, now: datetime
    ) -> None:
        if row.status != "active":
            return
        row.status = "stopped"
        row.next_at = None
        row.reason = why[:500]
        row.updated_at = now
        session.add(row)
        note(session, incident, f"Escalation stopped: {why}.", now, kind=JournalKind.RESULT)

    def _severity_changed(self, session: Session, ev: SeverityChanged) -> None:
        incident, now = ev.incident, ev.now
        row = escalation_row(session, self._policy, incident, now)
        if is_higher(ev.current, ev.previous):
            self._apply(session, incident, row, ev.current, now)
            return
        if ev.current is Severity.P3:
            self._stop(session, incident, row, f"severity lowered to P3 by {ev.actor}", now)
        elif row.status == "active" and not row.business_hours_only:
            row.business_hours_only = True
            note(session, incident, "Now P2: further pages go out in business hours.", now)
        if row.founder_due_at is not None:
            row.founder_due_at = None
            note(session, incident, "No longer P1: the founder is not notified.", now)
        row.updated_at = now
        session.add(row)

    def _state_changed(self, session: Session, ev: StateChanged) -> None:
        incident, now = ev.incident, ev.now
        assert incident.id is not None
        row = escalation_row(session, self._policy, incident, now)
        if ev.previous is IncidentState.TRIGGERED and ev.current in STOPPING:
            self._stop(session, incident, row, f"{ev.current.value} by {ev.actor}", now)
            if ev.current is not IncidentState.RESOLVED:
                for channel in PROVIDER_CHANNELS:
                    queue_sync(
                        session,
                        incident_id=incident.id,
                        channel=channel,
                        action="acknowledge",
                        now=now,
                    )
        if ev.current is IncidentState.RESOLVED:
            self._stop(session, incident, row, f"resolved by {ev.actor}", now)
            row.founder_due_at = None
            for channel in PROVIDER_CHANNELS:
                queue_sync(
                    session, incident_id=incident.id, channel=channel, action="resolve", now=now
                )
        if ev.current is IncidentState.TRIGGERED:
            self._apply(session, incident, row, Severity(incident.severity), now)
        row.updated_at = now
        session.add(row)

    # -- firing steps -----------------------------------------------------------------------

    def _advance(
        self,
        session: Session,
        incident: IncidentRow,
        row: EscalationRow,
        snapshot: Snapshot,
        now: datetime,
    ) -> set[str]:
        """Fire what is due now; return the people sent a Slack DM."""
        paged: set[str] = set()
        if row.status != "active" or row.next_at is None or row.next_at > now:
            row.updated_at = now
            session.add(row)
            return paged
        hours = self._policy.hours
        due = due_now(
            snapshot,
            EscalationState(row.step, row.round, row.next_at),
            now,
            hours if row.business_hours_only else None,
        )
        for fire in due.fires:
            paged |= fire_step(session, self._policy, incident, row, snapshot, fire, now)
        row.step, row.round, row.next_at = due.state.step, due.state.round, due.state.next_at
        if due.waits:
            zone = ZoneInfo(hours.timezone)
            note(
                session,
                incident,
                "Outside business hours: the next page waits until "
                f"{due.state.next_at.astimezone(zone):%a %H:%M %Z} (P2).",
                now,
            )
        if due.exhausted is not None:
            rounds = due.exhausted.rounds
            row.status = "exhausted"
            row.next_at = None
            row.reason = f"nobody acknowledged after {rounds} round(s)"
            note(
                session,
                incident,
                f"Escalation exhausted: nobody acknowledged after {rounds} round(s) of "
                f"policy {snapshot.policy}. Page someone with /ai-incident page.",
                now,
                kind=JournalKind.RESULT,
            )
        row.updated_at = now
        session.add(row)
        return paged

    # -- the scheduler job ------------------------------------------------------------------

    def escalate_due(self, session: Session, *, limit: int = 100) -> int:
        """Fire every escalation step and founder notice that is due; return how many moved."""
        now = self._clock()
        e = _ESCALATIONS.c
        due = session.execute(
            sa.select(e.id, e.incident_id)
            .where(sa.or_(sa.and_(e.status == "active", e.next_at <= now), e.founder_due_at <= now))
            .order_by(e.id)
            .limit(limit)
        ).all()
        moved = 0
        for escalation_id, incident_id in due:
            # the incident's lock first, as every incident change takes it before this row's;
            # one another replica holds is left for the next tick
            incident = session.exec(
                select(IncidentRow)
                .where(IncidentRow.id == incident_id)
                .with_for_update(skip_locked=True)
            ).first()
            if incident is None:
                continue
            row = session.exec(
                select(EscalationRow).where(EscalationRow.id == escalation_id).with_for_update()
            ).one()
            snapshot = Snapshot.from_json(row.snapshot)
            worked = False
            if row.founder_due_at is not None and row.founder_due_at <= now:
                notify_founder(session, self._policy, incident, row, snapshot, now)
                worked = True
            if row.status == "active" and row.next_at is not None and row.next_at <= now:
                if incident.state != IncidentState.TRIGGERED.value:
                    self._stop(session, incident, row, f"the incident is {incident.state}", now)
                else:
                    self._advance(session, incident, row, snapshot, now)
                worked = True
            row.updated_at = now
            session.add(row)
            moved += int(worked)
        return moved

    # -- commands ---------------------------------------------------------------------------

    def person_key(self, *, user_id: str | None, user_name: str | None) -> str:
        """Return the person a mention names: a policy person id, else the bare Slack id."""
        return self._desk.person_key(user_id=user_id, user_name=user_name)

    def page_by_hand(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        user_id: str | None = None,
        user_name: str | None = None,
        oncall: bool = False,
    ) -> str:
        """Page one person, or whoever is on call, for an incident; return what was done."""
        return self._desk.page_by_hand(
            session,
            incident_id=incident_id,
            actor=actor,
            user_id=user_id,
            user_name=user_name,
            oncall=oncall,
        )

    def add_override(
        self,
        session: Session,
        *,
        actor: str,
        person: str,
        start: datetime,
        end: datetime,
        schedule: str | None = None,
    ) -> OnCallOverrideRow:
        """Put `person` on call from `start` to `end`, in `schedule` or every schedule."""
        return self._desk.add_override(
            session, actor=actor, person=person, start=start, end=end, schedule=schedule
        )

    def who_is_on_call(self, session: Session) -> list[OnCallAnswer]:
        """Return who is on call now and next in every schedule of the policy file."""
        return self._desk.who_is_on_call(session)
