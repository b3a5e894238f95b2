"""People acting on an incident: declare, acknowledge, mitigate, resolve, reopen, notes, root
cause, severity and reports, each a command checked on construction and decided on a snapshot.

The states follow §5: triggered → acknowledged → mitigated → resolved, and resolved → triggered
again on reopen; a resolved incident has no running deadline and no open alert group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.incidents.model import (
    SYSTEM,
    CardChanged,
    CardPosted,
    Effect,
    Entry,
    GroupClosed,
    IllegalTransition,
    Incident,
    IncidentOpened,
    MissingReason,
    Outcome,
    PostmortemRequested,
    ReportRequested,
    RootCauseSet,
    SeverityMoved,
    StateMoved,
)
from bot.domain.incidents.policy import IncidentPolicy
from bot.domain.incidents.vocabulary import IncidentState, JournalKind
from bot.domain.severity import (
    Decision,
    Reason,
    Severity,
    SeverityRules,
    is_higher,
    root_cause_deadline,
)

__all__ = [
    "Acknowledge",
    "Declare",
    "Mitigate",
    "Note",
    "RecordRootCause",
    "Reopen",
    "Report",
    "Resolve",
    "ResolveFromTicket",
    "SetSeverity",
    "acknowledge",
    "change_severity",
    "declare",
    "lowers_severity",
    "mitigate",
    "move",
    "note",
    "raise_to",
    "record_root_cause",
    "reopen",
    "report",
    "resolve",
    "resolve_from_ticket",
    "set_severity",
]


def _require(text: str | None, action: str) -> None:
    if text is None or not text.strip():
        raise MissingReason(action)


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declare:
    title: str
    actor: str
    severity: Severity | None = None
    workflow: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Acknowledge:
    actor: str


@dataclass(frozen=True)
class Mitigate:
    actor: str


@dataclass(frozen=True)
class Resolve:
    actor: str
    summary: str | None = None


@dataclass(frozen=True)
class ResolveFromTicket:
    """The incident's ticket was closed; the tracker's permissions vouch for the actor."""

    actor: str
    why: str


@dataclass(frozen=True)
class Reopen:
    actor: str
    reason: str

    def __post_init__(self) -> None:
        _require(self.reason, "reopen an incident")


@dataclass(frozen=True)
class Note:
    actor: str
    text: str
    kind: JournalKind = JournalKind.OBSERVATION


@dataclass(frozen=True)
class RecordRootCause:
    actor: str
    text: str

    def __post_init__(self) -> None:
        _require(self.text, "record a root cause")


@dataclass(frozen=True)
class SetSeverity:
    actor: str
    severity: Severity
    reason: str

    def __post_init__(self) -> None:
        _require(self.reason, "change the severity")


@dataclass(frozen=True)
class Report:
    actor: str
    name: str


# -- the moves every path shares --------------------------------------------------------------


def move(
    incident: Incident, to: IncidentState, *, actor: str, now: datetime, why: str = ""
) -> Outcome:
    """Move to state `to`; resolving ends the automatic deadlines and closes the alert group."""
    previous = incident.state
    moved = incident.but(state=to, updated_at=now)
    effects: list[Effect] = []
    if to is IncidentState.RESOLVED:
        moved = moved.but(severity_review_at=None, root_cause_deadline_at=None)
        effects.append(GroupClosed())
    effects += [
        Entry(JournalKind.CHANGE, f"State {previous.value} → {to.value}{why}", actor),
        CardChanged(),
        StateMoved(moved, previous, to, actor, why.lstrip(": ").rstrip(".")),
    ]
    return Outcome(moved, tuple(effects))


def change_severity(
    incident: Incident,
    to: Severity,
    *,
    reasons: tuple[Reason, ...],
    entry: Entry,
    reason: str,
    by_human: bool,
    rules: SeverityRules,
    now: datetime,
) -> Outcome:
    """Set a new severity with its reasons; a P2 without root cause restarts its clock."""
    changed = incident.but(
        severity=to,
        severity_reasons=reasons,
        severity_changed_at=now,
        root_cause_deadline_at=(
            None if incident.root_cause_at is not None else root_cause_deadline(to, now, rules)
        ),
        updated_at=now,
    )
    event = SeverityMoved(changed, incident.severity, to, entry.author, reason, by_human)
    return Outcome(changed, (entry, CardChanged(), event))


def raise_to(
    incident: Incident, decision: Decision, rules: SeverityRules, now: datetime
) -> Outcome:
    """Raise the severity as the rules decided."""
    reasons = "; ".join(r.text for r in decision.reasons)
    text = f"Severity {incident.severity.value} → {decision.severity.value}: {reasons}"
    return change_severity(
        incident,
        decision.severity,
        reasons=decision.reasons,
        entry=Entry(JournalKind.CHANGE, text, SYSTEM),
        reason=reasons,
        by_human=False,
        rules=rules,
        now=now,
    )


def _resolved(
    incident: Incident, *, actor: str, by: str, summary: str | None, why: str, now: datetime
) -> Outcome:
    done = incident.but(resolved_at=now, resolved_by=by, resolution_summary=summary)
    return move(done, IncidentState.RESOLVED, actor=actor, now=now, why=why)


# -- people's commands ------------------------------------------------------------------------


def declare(command: Declare, policy: IncidentPolicy, now: datetime) -> Outcome:
    """Open an incident by hand; severity defaults to the policy's until someone says otherwise."""
    asked = command.workflow
    name = asked if asked and asked in policy.workflows else None
    name = name or policy.default_workflow
    wf = policy.workflow(name)
    sev = command.severity or policy.severity.default
    why = f"declared {sev.value} by hand" + (f": {command.reason}" if command.reason else "")
    incident = Incident(
        id=None,
        title=command.title[:500],
        workflow=name,
        category=wf.category.value,
        severity=sev,
        severity_reasons=(Reason("declared", sev, why),),
        state=IncidentState.TRIGGERED,
        source=f"declared:{command.actor}",
        ai_context={"workflow": name},
        impact_external=wf.category.value == "customer-facing",
        slack_channel=wf.channel,
        detected_at=now,
        triggered_at=now,
        severity_changed_at=now,
        root_cause_deadline_at=root_cause_deadline(sev, now, policy.severity),
        created_at=now,
        updated_at=now,
    )
    note = (
        ""
        if name == asked or asked is None
        else f" (workflow {asked!r} is not defined; filed under {name!r})"
    )
    text = f"Incident declared by {command.actor} as {sev.value}{note}."
    return Outcome(
        incident,
        (
            CardPosted(),
            Entry(JournalKind.CHANGE, text, command.actor),
            IncidentOpened(incident, command.actor, declared=True),
        ),
    )


def acknowledge(incident: Incident, command: Acknowledge, now: datetime) -> Outcome:
    """Acknowledge: the actor becomes commander; acknowledging twice changes nothing."""
    if incident.state is IncidentState.ACKNOWLEDGED:
        return Outcome(incident)
    if incident.state is not IncidentState.TRIGGERED:
        raise IllegalTransition(incident.state, "acknowledged")
    acked = incident.but(commander=command.actor, acknowledged_at=now)
    return move(acked, IncidentState.ACKNOWLEDGED, actor=command.actor, now=now)


def mitigate(incident: Incident, command: Mitigate, now: datetime) -> Outcome:
    """Record that the impact is contained; it implies an acknowledgement."""
    if incident.state in (IncidentState.MITIGATED, IncidentState.RESOLVED):
        raise IllegalTransition(incident.state, "mitigated")
    contained = incident.but(
        mitigated_at=now,
        acknowledged_at=incident.acknowledged_at or now,
        commander=incident.commander or command.actor,
    )
    return move(contained, IncidentState.MITIGATED, actor=command.actor, now=now)


def resolve(incident: Incident, command: Resolve, now: datetime) -> Outcome:
    """Resolve by hand."""
    if incident.state is IncidentState.RESOLVED:
        raise IllegalTransition(incident.state, "resolved again")
    why = f": {command.summary}" if command.summary else ""
    return _resolved(
        incident, actor=command.actor, by=command.actor, summary=command.summary, why=why, now=now
    )


def resolve_from_ticket(incident: Incident, command: ResolveFromTicket, now: datetime) -> Outcome:
    """Resolve because the ticket was closed; nothing changes when resolved already (an echo)."""
    if incident.state is IncidentState.RESOLVED:
        return Outcome(incident)
    return _resolved(
        incident,
        actor=command.actor,
        by=command.actor,
        summary=command.why,
        why=f": {command.why}",
        now=now,
    )


def reopen(incident: Incident, command: Reopen, now: datetime) -> Outcome:
    """Reopen a resolved incident."""
    if incident.state is not IncidentState.RESOLVED:
        raise IllegalTransition(incident.state, "reopened")
    back = incident.but(resolved_at=None, resolved_by=None)
    return move(
        back, IncidentState.TRIGGERED, actor=command.actor, now=now, why=f": {command.reason}"
    )


def note(incident: Incident, command: Note) -> Outcome:
    """Add a journal entry written by a person."""
    return Outcome(incident, (Entry(command.kind, command.text, command.actor),))


def record_root_cause(incident: Incident, command: RecordRootCause, now: datetime) -> Outcome:
    """Record the root cause; it stops the P2 → P1 clock, and the first time counts."""
    found = incident.but(
        root_cause=command.text,
        root_cause_at=incident.root_cause_at or now,
        root_cause_deadline_at=None,
        updated_at=now,
    )
    return Outcome(
        found,
        (
            Entry(JournalKind.ROOT_CAUSE, command.text, command.actor),
            CardChanged(),
            RootCauseSet(found, command.text, command.actor),
        ),
    )


def lowers_severity(incident: Incident, command: SetSeverity) -> bool:
    """Return True if the command lowers the severity (which needs a responder)."""
    return is_higher(incident.severity, command.severity)


def set_severity(
    incident: Incident, command: SetSeverity, rules: SeverityRules, now: datetime
) -> Outcome:
    """Change severity by hand with a reason; setting the same severity changes nothing."""
    old, to, actor = incident.severity, command.severity, command.actor
    if old == to:
        return Outcome(incident)
    text = f"Severity {old.value} → {to.value} by {actor}: {command.reason}"
    return change_severity(
        incident,
        to,
        reasons=(Reason("human", to, f"set by {actor}: {command.reason}"),),
        entry=Entry(JournalKind.DECISION, text, actor),
        reason=command.reason,
        by_human=True,
        rules=rules,
        now=now,
    )


def report(incident: Incident, command: Report) -> Outcome:
    """Post the timeline or the postmortem draft; a postmortem request is journalled too."""
    effects: tuple[Effect, ...] = (ReportRequested(command.name),)
    if command.name == "postmortem":
        text = f"Postmortem draft requested by {command.actor}; it follows in this thread."
        effects += (
            Entry(JournalKind.ACTION, text, command.actor),
            PostmortemRequested(incident, command.actor),
        )
    return Outcome(incident, effects)
