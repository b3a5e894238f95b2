"""The on-call commands' use cases: who is on call, overrides, paging someone by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.domain.incidents import format_incident_id
from bot.domain.permissions import person_of
from bot.paging.escalation import Contact, Snapshot, contact_in
from bot.paging.notices import labels, names
from bot.paging.oncall import OnCallNow, now_and_next
from bot.paging.policy import PagingPolicy
from bot.paging.rows import escalation_row, note, on_call_now, overrides
from bot.services.errors import DomainError, IncidentNotFound
from storage.models import IncidentRow, OnCallOverrideRow
from storage.pages import queue_pages

__all__ = ["OnCallAnswer", "OnCallDesk", "UnknownPerson"]


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


class OnCallDesk:
    """Answers `oncall`, records overrides, and pages people by hand."""

    def __init__(self, *, policy: PagingPolicy, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._clock = clock

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

    def _on_call_people(self, session: Session, snapshot: Snapshot, now: datetime) -> list[str]:
        """Return who is on call in the schedules the escalation names (else in every one)."""
        wanted = [t.ref for s in snapshot.steps for t in s.targets if t.kind == "schedule"]
        schedules = {n: snapshot.schedules[n] for n in wanted if n in snapshot.schedules}
        timezone = snapshot.timezone
        if not schedules:
            schedules = dict(self._policy.schedules)
            timezone = self._policy.timezone
        people = [
            p
            for name, sched in schedules.items()
            if (p := on_call_now(session, name, sched, sched.timezone or timezone, now))
        ]
        if not people:
            raise DomainError(
                "Nobody is on call"
                + (f" in {', '.join(schedules)}" if schedules else ": no schedule is defined")
                + "; page someone by name."
            )
        return people

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
        row = escalation_row(session, self._policy, incident, now)
        snapshot = Snapshot.from_json(row.snapshot)
        public = format_incident_id(incident_id)
        if oncall:
            channels = self._policy.paging.every_channel()
            people = self._on_call_people(session, snapshot, now)
        else:
            channels = self._policy.paging.person_channels()
            people = [self.person_key(user_id=user_id, user_name=user_name)]
        contacts = [contact_in(self._policy, p, snapshot) for p in dict.fromkeys(people)]
        key_base = f"manual:{incident_id}:{now.timestamp():.6f}:{actor}"
        who = person_of(self._policy, actor)
        why = f"paged by hand by {contact_in(self._policy, who).label if who else actor}"
        queue_pages(
            session,
            incident_id=incident_id,
            contacts=contacts,
            groups=(),
            channels=channels,
            reason="manual",
            why=why,
            key_base=key_base,
            now=now,
            stop_if_handled=False,
        )
        note(
            session,
            incident,
            f"Paged {names(contacts)} by hand via {labels(channels)}.",
            now,
            author=actor,
        )
        return f"Paging {names(contacts)} for {public} via {labels(channels)}."

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
            current = now_and_next(schedule, now, overrides(session, name, now), timezone)
            out.append(
                OnCallAnswer(
                    schedule=name,
                    timezone=timezone,
                    now=current,
                    person=self._contact(current.person),
                    next_person=self._contact(current.next_person),
                )
            )
        return out

    def _contact(self, person: str | None) -> Contact | None:
        return contact_in(self._policy, person) if person else None
