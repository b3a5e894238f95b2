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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.config import Policy, Schedule
from bot.domain.incidents import IncidentState, JournalKind, format_incident_id
from bot.domain.permissions import person_of
from bot.domain.severity import Severity, is_higher
from bot.paging.escalation import (
    CHANNEL_LABELS,
    Contact,
    EscalationState,
    Exhausted,
    Fire,
    Snapshot,
    looks_like_slack_user,
    next_open,
    next_step,
    resolve_targets,
    take_snapshot,
)
from bot.paging.oncall import OnCallNow, Override, now_and_next, on_call_at
from bot.paging.pages import queue_group, queue_mention, queue_page, queue_sync
from bot.services.errors import DomainError, IncidentNotFound
from bot.services.events import IncidentEvent, IncidentOpened, SeverityChanged, StateChanged
from storage import journal
from storage.models import EscalationRow, IncidentRow, OnCallOverrideRow, PageRow

__all__ = ["FOUNDER_WITHIN", "OnCallAnswer", "PagingService", "UnknownPerson"]

log = logging.getLogger(__name__)

_ESCALATIONS: sa.Table = EscalationRow.__table__  # type: ignore[attr-defined]
_OVERRIDES: sa.Table = OnCallOverrideRow.__table__  # type: ignore[attr-defined]

SYSTEM = "paging"  # the author of paging's journal entries
FOUNDER_WITHIN = timedelta(hours=2)
STOPPING = (IncidentState.ACKNOWLEDGED, IncidentState.MITIGATED, IncidentState.RESOLVED)


class UnknownPerson(DomainError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"I don't know @{name}: mention them so Slack sends their id, or add them under "
            "people in the policy file."
        )
        self.name = name


@dataclass(frozen=True)
class OnCallAnswer:
    """Who is on call in one schedule now, and who is next."""

    schedule: str
    timezone: str
    now: OnCallNow
    person: Contact | None
    next_person: Contact | None


def _labels(channels: Sequence[str]) -> str:
    return ", ".join(CHANNEL_LABELS.get(c, c) for c in channels)


def _names(contacts: Sequence[Contact]) -> str:
    return ", ".join(c.label for c in contacts)


class PagingService:
    """The paging listener, the due-escalation job, and the paging commands."""

    def __init__(self, *, policy: Policy, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._clock = clock

    # -- what can reach whom ----------------------------------------------------------------

    def _configured(self, channel: str) -> bool:
        paging = self._policy.paging
        return bool(
            {
                "pagerduty": paging.pagerduty_routing_key,
                "opsgenie": paging.opsgenie_api_key,
                "webhook": paging.webhook_url,
            }.get(channel)
        )

    def _person_channels(self) -> list[str]:
        """Channels for pages outside a policy step: Slack DM and per-person providers set up."""
        return ["slack_dm", *(c for c in ("opsgenie", "webhook") if self._configured(c))]

    def _contact(self, person: str, snapshot: Snapshot | None = None) -> Contact:
        if snapshot is not None:
            return snapshot.contact(person, self._policy)
        p = self._policy.people.get(person)
        if p is not None:
            return Contact(
                person=person, name=p.name, slack_id=p.slack_id, email=p.email, phone=p.phone
            )
        return Contact(person=person, slack_id=person if looks_like_slack_user(person) else None)

    def _overrides(self, session: Session, schedule: str, now: datetime) -> list[Override]:
        o = _OVERRIDES.c
        rows = session.execute(
            sa.select(o.id, o.person, o.starts_at, o.ends_at).where(
                o.ends_at > now, sa.or_(o.schedule == schedule, o.schedule.is_(None))
            )
        ).all()
        return [Override(r.person, r.starts_at, r.ends_at, made=r.id) for r in rows]

    def _on_call(
        self, session: Session, name: str, schedule: Schedule, timezone: str, now: datetime
    ) -> str | None:
        return on_call_at(schedule, now, self._overrides(session, name, now), timezone)

    # -- the escalation row -----------------------------------------------------------------

    def _row(self, session: Session, incident: IncidentRow, now: datetime) -> EscalationRow:
        """Return the incident's escalation row, locked; created with a snapshot if missing."""
        row = session.exec(
            select(EscalationRow).where(EscalationRow.incident_id == incident.id).with_for_update()
        ).first()
        if row is None:
            snapshot = take_snapshot(self._policy, incident.workflow)
            assert incident.id is not None
            row = EscalationRow(
                incident_id=incident.id,
                policy=snapshot.policy,
                snapshot=snapshot.to_json(),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
        return row

    def _journal(
        self,
        session: Session,
        incident: IncidentRow,
        text: str,
        now: datetime,
        *,
        kind: JournalKind = JournalKind.ACTION,
        author: str = SYSTEM,
    ) -> None:
        journal.record(session, incident, kind=kind, text=text, author=author, now=now)

    # -- the listener -----------------------------------------------------------------------

    def __call__(self, session: Session, event: IncidentEvent) -> None:
        """React to an incident event inside its transaction."""
        if isinstance(event, IncidentOpened):
            row = self._row(session, event.incident, event.now)
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
                self._journal(
                    session,
                    incident,
                    f"Now {sev.value}: paging goes on at once, day or night.",
                    now,
                )
            paged = self._advance(session, incident, row, snapshot, now)
        self._notify_ai_lead(session, incident, snapshot, sev, now, skip=paged)
        if (
            sev is Severity.P1
            and incident.impact_external
            and row.founder_due_at is None
            and not self._founder_reached(session, incident, snapshot)
            and snapshot.roles.get("founder")
        ):
            row.founder_due_at = now + FOUNDER_WITHIN
            self._journal(
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
        self._journal(
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
        self._journal(
            session, incident, f"Escalation stopped: {why}.", now, kind=JournalKind.RESULT
        )

    def _severity_changed(self, session: Session, ev: SeverityChanged) -> None:
        incident, now = ev.incident, ev.now
        row = self._row(session, incident, now)
        if is_higher(ev.current, ev.previous):
            self._apply(session, incident, row, ev.current, now)
            return
        if ev.current is Severity.P3:
            self._stop(session, incident, row, f"severity lowered to P3 by {ev.actor}", now)
        elif row.status == "active" and not row.business_hours_only:
            row.business_hours_only = True
            self._journal(session, incident, "Now P2: further pages go out in business hours.", now)
        if row.founder_due_at is not None:
            row.founder_due_at = None
            self._journal(session, incident, "No longer P1: the founder is not notified.", now)
        row.updated_at = now
        session.add(row)

    def _state_changed(self, session: Session, ev: StateChanged) -> None:
        incident, now = ev.incident, ev.now
        assert incident.id is not None
        row = self._row(session, incident, now)
        if ev.previous is IncidentState.TRIGGERED and ev.current in STOPPING:
            self._stop(session, incident, row, f"{ev.current.value} by {ev.actor}", now)
            if ev.current is not IncidentState.RESOLVED:
                for channel in ("pagerduty", "opsgenie", "webhook"):
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
            for channel in ("pagerduty", "opsgenie", "webhook"):
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
        for _ in range(len(snapshot.steps) * (snapshot.repeat + 1) + 2):
            if row.status != "active" or row.next_at is None or row.next_at > now:
                break
            hours = self._policy.hours
            if row.business_hours_only and not hours.is_open(now):
                row.next_at = next_open(hours, now)
                zone = ZoneInfo(hours.timezone)
                self._journal(
                    session,
                    incident,
                    "Outside business hours: the next page waits until "
                    f"{row.next_at.astimezone(zone):%a %H:%M %Z} (P2).",
                    now,
                )
                break
            due = next_step(snapshot, EscalationState(row.step, row.round, row.next_at), now)
            if due is None:
                break
            if isinstance(due, Exhausted):
                row.status = "exhausted"
                row.next_at = None
                row.reason = f"nobody acknowledged after {due.rounds} round(s)"
                self._journal(
                    session,
                    incident,
                    f"Escalation exhausted: nobody acknowledged after {due.rounds} round(s) of "
                    f"policy {snapshot.policy}. Page someone with /ai-incident page.",
                    now,
                    kind=JournalKind.RESULT,
                )
                break
            paged |= self._fire(session, incident, row, snapshot, due, now)
            row.step, row.round, row.next_at = due.after.step, due.after.round, due.after.next_at
        row.updated_at = now
        session.add(row)
        return paged

    def _fire(
        self,
        session: Session,
        incident: IncidentRow,
        row: EscalationRow,
        snapshot: Snapshot,
        due: Fire,
        now: datetime,
    ) -> set[str]:
        assert incident.id is not None

        def on_call(name: str) -> str | None:
            return self._on_call(session, name, snapshot.schedules[name], snapshot.timezone, now)

        reach = resolve_targets(snapshot, due.step.targets, on_call)
        contacts = [self._contact(p, snapshot) for p in reach.people]
        where = due.describe(snapshot)
        why = f"escalation {where} of policy {snapshot.policy}"
        key_base = f"page:{incident.id}:{row.run}.{due.round}.{due.index}"
        for contact in contacts:
            for channel in due.step.channels:
                queue_page(
                    session,
                    incident_id=incident.id,
                    contact=contact,
                    channel=channel,
                    reason="escalation",
                    why=why,
                    key_base=key_base,
                    now=now,
                    run=row.run,
                    round_=due.round,
                    step=due.index,
                )
        for group in reach.groups:
            queue_group(
                session,
                incident_id=incident.id,
                group=group,
                channels=due.step.channels,
                reason="escalation",
                why=why,
                key_base=key_base,
                now=now,
                run=row.run,
                round_=due.round,
                step=due.index,
            )
        who = [c.label for c in contacts] + [f"user group {g}" for g in reach.groups]
        if who:
            text = f"Escalation {where}: paging {', '.join(who)} via {_labels(due.step.channels)}."
        else:
            text = f"Escalation {where}: nobody to page."
        if reach.gaps:
            text += " " + "; ".join(reach.gaps).capitalize() + "."
        self._journal(session, incident, text, now)
        founders = set(snapshot.roles.get("founder", ()))
        if founders & {c.person for c in contacts}:
            row.founder_due_at = None
        return {c.person for c in contacts} if "slack_dm" in due.step.channels else set()

    def _notify_ai_lead(
        self,
        session: Session,
        incident: IncidentRow,
        snapshot: Snapshot,
        sev: Severity,
        now: datetime,
        *,
        skip: set[str],
    ) -> None:
        """Slack DM to the AI lead and a mention in the thread, once per severity reached."""
        assert incident.id is not None
        leads = snapshot.roles.get("ai_lead", ())
        people = [m for m in leads if not m.startswith("group:")]
        groups = [m.removeprefix("group:") for m in leads if m.startswith("group:")]
        contacts = [self._contact(p, snapshot) for p in people]
        key = f"notify:{incident.id}:{sev.value}"
        if not leads:
            return
        queued = queue_mention(
            session,
            incident_id=incident.id,
            users=[c.slack_id for c in contacts if c.slack_id],
            groups=groups,
            severity=sev.value,
            key=f"{key}:thread",
            now=now,
        )
        if not queued:
            return  # notified at this severity already
        why = f"{sev.value}: you are notified as the AI lead"
        for contact in contacts:
            if contact.person in skip:
                continue
            queue_page(
                session,
                incident_id=incident.id,
                contact=contact,
                channel="slack_dm",
                reason="notify",
                why=why,
                key_base=key,
                now=now,
                stop_if_handled=False,
            )
        for group in groups:
            queue_group(
                session,
                incident_id=incident.id,
                group=group,
                channels=["slack_dm"],
                reason="notify",
                why=why,
                key_base=key,
                now=now,
                stop_if_handled=False,
            )
        names = ", ".join([c.label for c in contacts] + [f"user group {g}" for g in groups])
        self._journal(
            session,
            incident,
            f"{sev.value}: the AI lead ({names}) is notified by Slack DM and mentioned here.",
            now,
        )

    def _founder_reached(self, session: Session, incident: IncidentRow, snapshot: Snapshot) -> bool:
        founders = [m for m in snapshot.roles.get("founder", ()) if not m.startswith("group:")]
        if not founders:
            return False
        found = session.exec(
            select(PageRow.id)
            .where(
                PageRow.incident_id == incident.id,
                PageRow.person.in_(founders),  # type: ignore[attr-defined]
                PageRow.status.in_(("queued", "sent")),  # type: ignore[attr-defined]
            )
            .limit(1)
        ).first()
        return found is not None

    def _notify_founder(
        self,
        session: Session,
        incident: IncidentRow,
        row: EscalationRow,
        snapshot: Snapshot,
        now: datetime,
    ) -> None:
        assert incident.id is not None
        row.founder_due_at = None
        if incident.state == IncidentState.RESOLVED.value:
            return
        if self._founder_reached(session, incident, snapshot):
            return
        founders = snapshot.roles.get("founder", ())
        contacts = [self._contact(m, snapshot) for m in founders if not m.startswith("group:")]
        groups = [m.removeprefix("group:") for m in founders if m.startswith("group:")]
        channels = self._person_channels()
        why = "P1 with external impact, unresolved after two hours: you are notified as founder"
        key_base = f"founder:{incident.id}:{row.run}"
        for contact in contacts:
            for channel in channels:
                queue_page(
                    session,
                    incident_id=incident.id,
                    contact=contact,
                    channel=channel,
                    reason="founder",
                    why=why,
                    key_base=key_base,
                    now=now,
                    stop_if_handled=False,
                )
        for group in groups:
            queue_group(
                session,
                incident_id=incident.id,
                group=group,
                channels=channels,
                reason="founder",
                why=why,
                key_base=key_base,
                now=now,
                stop_if_handled=False,
            )
        names = ", ".join([c.label for c in contacts] + [f"user group {g}" for g in groups])
        self._journal(
            session,
            incident,
            f"P1 with external impact unresolved for two hours: notifying the founder ({names}) "
            f"via {_labels(channels)}.",
            now,
        )

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
                self._notify_founder(session, incident, row, snapshot, now)
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
        if user_id:
            return person_of(self._policy, user_id) or user_id
        name = (user_name or "").lower()
        if not name:
            raise UnknownPerson("")
        for key, person in self._policy.people.items():
            email_name = (person.email or "").split("@")[0].lower()
            if name in (key.lower(), (person.name or "").lower(), email_name):
                return key
        raise UnknownPerson(user_name or "")

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
        now = self._clock()
        incident = session.get(IncidentRow, incident_id, with_for_update=True)
        if incident is None:
            raise IncidentNotFound(incident_id)
        row = self._row(session, incident, now)
        snapshot = Snapshot.from_json(row.snapshot)
        public = format_incident_id(incident_id)
        if oncall:
            channels = [
                "slack_dm",
                *(c for c in ("pagerduty", "opsgenie", "webhook") if self._configured(c)),
            ]
            names = [t.ref for s in snapshot.steps for t in s.targets if t.kind == "schedule"]
            schedules = {n: snapshot.schedules[n] for n in names if n in snapshot.schedules}
            timezone = snapshot.timezone
            if not schedules:
                schedules = dict(self._policy.schedules)
                timezone = self._policy.timezone
            people = [
                p
                for name, sched in schedules.items()
                if (p := self._on_call(session, name, sched, sched.timezone or timezone, now))
            ]
            if not people:
                raise DomainError(
                    "Nobody is on call"
                    + (f" in {', '.join(schedules)}" if schedules else ": no schedule is defined")
                    + "; page someone by name."
                )
        else:
            channels = self._person_channels()
            people = [self.person_key(user_id=user_id, user_name=user_name)]
        contacts = [self._contact(p, snapshot) for p in dict.fromkeys(people)]
        key_base = f"manual:{incident_id}:{now.timestamp():.6f}:{actor}"
        who = person_of(self._policy, actor)
        why = f"paged by hand by {self._contact(who).label if who else actor}"
        for contact in contacts:
            for channel in channels:
                queue_page(
                    session,
                    incident_id=incident_id,
                    contact=contact,
                    channel=channel,
                    reason="manual",
                    why=why,
                    key_base=key_base,
                    now=now,
                    stop_if_handled=False,
                )
        self._journal(
            session,
            incident,
            f"Paged {_names(contacts)} by hand via {_labels(channels)}.",
            now,
            author=actor,
        )
        return f"Paging {_names(contacts)} for {public} via {_labels(channels)}."

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
        if schedule is not None and schedule not in self._policy.schedules:
            known = ", ".join(sorted(self._policy.schedules)) or "none is defined"
            raise DomainError(f"There is no schedule {schedule!r} ({known}).")
        if end <= start:
            raise DomainError("The override must end after it starts.")
        if end <= self._clock():
            raise DomainError("That override would already be over.")
        row = OnCallOverrideRow(
            schedule=schedule,
            person=person[:100],
            starts_at=start,
            ends_at=end,
            created_by=actor[:100],
            created_at=self._clock(),
        )
        session.add(row)
        session.flush()
        return row

    def who_is_on_call(self, session: Session) -> list[OnCallAnswer]:
        """Return who is on call now and next in every schedule of the policy file."""
        now = self._clock()
        out = []
        for name, schedule in self._policy.schedules.items():
            timezone = schedule.timezone or self._policy.timezone
            current = now_and_next(schedule, now, self._overrides(session, name, now), timezone)
            out.append(
                OnCallAnswer(
                    schedule=name,
                    timezone=timezone,
                    now=current,
                    person=self._contact(current.person) if current.person else None,
                    next_person=self._contact(current.next_person) if current.next_person else None,
                )
            )
        return out
