"""Incident use cases: open and update from alerts, people's actions, severity over time and
thread capture. The decisions are the lifecycle's (`bot.domain.incidents`), the queries the
repository's (`storage.incidents`); `IncidentService` is the one face the callers see.

ingest      bot/services/incident_ingest.py    a notification opens, joins or resolves
actions     bot/services/incident_actions.py   declare, acknowledge, resolve, severity, ...
timers      bot/services/incident_timers.py    review_due, escalate_due
threads     bot/services/incident_threads.py   replies, edits and deletions in the thread
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import Session

from bot.config import Policy
from bot.domain.alerts import Notification
from bot.domain.incidents import SYSTEM, JournalKind, journal_kind_of
from bot.domain.severity import Severity
from bot.services.events import Listener
from bot.services.incident_actions import GroupMembers, IncidentActions
from bot.services.incident_ingest import AlertIngest, IngestOutcome
from bot.services.incident_outcomes import Lifecycle
from bot.services.incident_threads import ThreadCapture
from bot.services.incident_timers import IncidentTimers
from storage import incidents as repository
from storage.incidents import evidence_from_row
from storage.models import IncidentRow

__all__ = [
    "SYSTEM",
    "GroupMembers",
    "IncidentService",
    "IngestOutcome",
    "evidence_from_row",
    "journal_kind_of",
]


class IncidentService:
    """Use cases on incidents; every method works inside the caller's transaction."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        listeners: Sequence[Listener] = (),
    ) -> None:
        self._life = Lifecycle(policy=policy, clock=clock, listeners=list(listeners))
        self._ingest = AlertIngest(self._life)
        self._actions = IncidentActions(self._life)
        self._timers = IncidentTimers(self._life)
        self._threads = ThreadCapture(self._life)

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock the service reads `now` from."""
        return self._life.clock

    # -- alerts -----------------------------------------------------------------------------

    def ingest(self, session: Session, n: Notification) -> IngestOutcome:
        """Apply one notification: open, join, update or resolve; duplicates change nothing."""
        return self._ingest.ingest(session, n)

    # -- people acting on incidents ---------------------------------------------------------

    def declare(
        self,
        session: Session,
        *,
        title: str,
        actor: str,
        severity: Severity | None = None,
        workflow: str | None = None,
        reason: str | None = None,
    ) -> IncidentRow:
        """Open an incident by hand; severity defaults to P3 until someone says otherwise."""
        return self._actions.declare(
            session, title=title, actor=actor, severity=severity, workflow=workflow, reason=reason
        )

    def acknowledge(self, session: Session, *, incident_id: int, actor: str) -> IncidentRow:
        """Acknowledge: the actor becomes commander; acknowledging twice changes nothing."""
        return self._actions.acknowledge(session, incident_id=incident_id, actor=actor)

    def mitigate(self, session: Session, *, incident_id: int, actor: str) -> IncidentRow:
        """Record that the impact is contained."""
        return self._actions.mitigate(session, incident_id=incident_id, actor=actor)

    def resolve(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        summary: str | None = None,
        groups: GroupMembers = None,
    ) -> IncidentRow:
        """Resolve by hand (responders only)."""
        return self._actions.resolve(
            session, incident_id=incident_id, actor=actor, summary=summary, groups=groups
        )

    def resolve_from_ticket(
        self, session: Session, *, incident_id: int, actor: str, why: str
    ) -> bool:
        """Resolve because its ticket was closed; False when it was resolved already."""
        return self._actions.resolve_from_ticket(
            session, incident_id=incident_id, actor=actor, why=why
        )

    def reopen(self, session: Session, *, incident_id: int, actor: str, reason: str) -> IncidentRow:
        """Reopen a resolved incident; a reason is required."""
        return self._actions.reopen(session, incident_id=incident_id, actor=actor, reason=reason)

    def note(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        text: str,
        kind: JournalKind = JournalKind.OBSERVATION,
    ) -> int:
        """Add a journal entry written by a person; return its id."""
        return self._actions.note(
            session, incident_id=incident_id, actor=actor, text=text, kind=kind
        )

    def record_root_cause(
        self, session: Session, *, incident_id: int, actor: str, text: str
    ) -> IncidentRow:
        """Record the root cause; it stops the P2 → P1 clock."""
        return self._actions.record_root_cause(
            session, incident_id=incident_id, actor=actor, text=text
        )

    def set_severity(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        severity: Severity,
        reason: str,
        groups: GroupMembers = None,
    ) -> IncidentRow:
        """Change severity by hand with a reason; lowering it needs a responder."""
        return self._actions.set_severity(
            session,
            incident_id=incident_id,
            actor=actor,
            severity=severity,
            reason=reason,
            groups=groups,
        )

    def report(self, session: Session, *, incident_id: int, actor: str, name: str) -> IncidentRow:
        """Post the timeline or the postmortem draft in the incident's thread."""
        return self._actions.report(session, incident_id=incident_id, actor=actor, name=name)

    # -- severity over time -----------------------------------------------------------------

    def review_due(self, session: Session, *, limit: int = 100) -> int:
        """Re-evaluate open incidents whose severity may have risen with time; return how many."""
        return self._timers.review_due(session, limit=limit)

    def escalate_due(self, session: Session, *, limit: int = 100) -> int:
        """Escalate P2 incidents with no root cause after the deadline; return how many."""
        return self._timers.escalate_due(session, limit=limit)

    # -- the thread is the journal ----------------------------------------------------------

    def capture_reply(
        self, session: Session, *, channel: str, thread_ts: str, ts: str, user: str, text: str
    ) -> int | None:
        """Store a person's reply in an incident thread as a journal entry; once per message."""
        return self._threads.capture_reply(
            session, channel=channel, thread_ts=thread_ts, ts=ts, user=user, text=text
        )

    def capture_edit(self, session: Session, *, channel: str, ts: str, text: str) -> bool:
        """Reflect an edited thread reply, keeping the previous text."""
        return self._threads.capture_edit(session, channel=channel, ts=ts, text=text)

    def capture_delete(self, session: Session, *, channel: str, ts: str) -> bool:
        """Mark a deleted thread reply as deleted; the entry itself is kept."""
        return self._threads.capture_delete(session, channel=channel, ts=ts)

    def count_open(self, session: Session) -> int:
        """Return the number of open incidents."""
        return repository.count_open(session)
