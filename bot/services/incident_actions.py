"""People acting on incidents: each use case loads the incident, asks the lifecycle, stores the
outcome. Who may do what (the responder role) is checked here, against the policy."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from sqlmodel import Session

from bot.domain import incidents as lifecycle
from bot.domain.incidents import Incident, JournalKind
from bot.domain.permissions import has_role
from bot.domain.severity import Severity
from bot.services.errors import NotAResponder
from bot.services.incident_outcomes import Lifecycle, refusals
from storage import incidents as repository
from storage.models import IncidentRow

__all__ = ["GroupMembers", "IncidentActions"]

GroupMembers = Mapping[str, Collection[str]] | None


class IncidentActions:
    """Declare, acknowledge, mitigate, resolve, reopen, note, root cause, severity, reports."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._life = lifecycle

    def _require(self, actor: str, role: str, action: str, groups: GroupMembers) -> None:
        if not has_role(self._life.policy, role, actor, groups):
            raise NotAResponder(user=actor, action=action)

    def _decide(
        self,
        session: Session,
        incident_id: int,
        decide: Callable[[Incident, datetime], lifecycle.Outcome],
    ) -> tuple[IncidentRow, lifecycle.Outcome, list[int]]:
        """Load the incident, decide on its snapshot, store the outcome."""
        row = self._life.load(session, incident_id)
        now = self._life.clock()
        before = repository.snapshot(row)
        with refusals(incident_id):
            outcome = decide(before, now)
        entry_ids = self._life.carry_out(session, row, before, outcome, now)
        return row, outcome, entry_ids

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
        now = self._life.clock()
        command = lifecycle.Declare(title, actor, severity, workflow, reason)
        outcome = lifecycle.declare(command, self._life.policy, now)
        row = repository.insert(session, outcome.incident)
        self._life.carry_out(session, row, outcome.incident, outcome, now)
        return row

    def acknowledge(self, session: Session, *, incident_id: int, actor: str) -> IncidentRow:
        """Acknowledge: the actor becomes commander; acknowledging twice changes nothing."""
        command = lifecycle.Acknowledge(actor)
        row, _, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.acknowledge(inc, command, now)
        )
        return row

    def mitigate(self, session: Session, *, incident_id: int, actor: str) -> IncidentRow:
        """Record that the impact is contained."""
        command = lifecycle.Mitigate(actor)
        row, _, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.mitigate(inc, command, now)
        )
        return row

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
        self._require(actor, "responders", "resolve incidents", groups)
        command = lifecycle.Resolve(actor, summary)
        row, _, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.resolve(inc, command, now)
        )
        return row

    def resolve_from_ticket(
        self, session: Session, *, incident_id: int, actor: str, why: str
    ) -> bool:
        """Resolve because its ticket was closed; the tracker's permissions vouch for the actor.

        Return False when the incident is resolved already (our own transition echoed back).
        """
        command = lifecycle.ResolveFromTicket(actor, why)
        _, outcome, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.resolve_from_ticket(inc, command, now)
        )
        return outcome.changed

    def reopen(self, session: Session, *, incident_id: int, actor: str, reason: str) -> IncidentRow:
        """Reopen a resolved incident; a reason is required."""
        with refusals(incident_id):
            command = lifecycle.Reopen(actor, reason)
        row, _, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.reopen(inc, command, now)
        )
        return row

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
        command = lifecycle.Note(actor, text, kind)
        _, _, (entry_id,) = self._decide(
            session, incident_id, lambda inc, now: lifecycle.note(inc, command)
        )
        return entry_id

    def record_root_cause(
        self, session: Session, *, incident_id: int, actor: str, text: str
    ) -> IncidentRow:
        """Record the root cause; it stops the P2 → P1 clock."""
        with refusals(incident_id):
            command = lifecycle.RecordRootCause(actor, text)
        row, _, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.record_root_cause(inc, command, now)
        )
        return row

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
        with refusals(incident_id):
            command = lifecycle.SetSeverity(actor, severity, reason)
        rules = self._life.policy.severity

        def decide(incident: Incident, now: datetime) -> lifecycle.Outcome:
            if lifecycle.lowers_severity(incident, command):
                self._require(actor, "responders", "lower a severity", groups)
            return lifecycle.set_severity(incident, command, rules, now)

        row, _, _ = self._decide(session, incident_id, decide)
        return row

    def report(self, session: Session, *, incident_id: int, actor: str, name: str) -> IncidentRow:
        """Post the timeline or the postmortem draft in the incident's thread."""
        command = lifecycle.Report(actor, name)
        row, _, _ = self._decide(
            session, incident_id, lambda inc, now: lifecycle.report(inc, command)
        )
        return row
