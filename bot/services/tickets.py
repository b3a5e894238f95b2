"""Tickets kept in step with incidents, both ways.

Outgoing: `TicketListener` hears incident events inside their transaction and queues outbox rows
(create, then comments, assignee, priority, transition, the postmortem draft), one ordering key per ticket so Jira being
down holds back only Jira's rows, never Slack's.

Incoming: `TicketEvents.apply` takes what the tracker says happened to a ticket (moved to done,
assignee changed) and applies it to the incident, journalled. Changes that came from the tracker
queue nothing back to it, and news that only repeats what we did is recognised, so the two sides
never chase each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.incidents import IncidentState, JournalKind
from bot.domain.people import display_name, person_by_account, person_by_slack
from bot.services.events import (
    IncidentEvent,
    IncidentOpened,
    PostmortemDrafted,
    RootCauseRecorded,
    SeverityChanged,
    StateChanged,
)
from bot.services.incidents import SYSTEM, IncidentService
from storage import journal
from storage.db import session_scope
from storage.models import IncidentRow
from storage.outbox import enqueue
from storage.ticket_outbox import TICKET_CREATE, TICKET_UPDATE, queue_update
from storage.ticket_outbox import ordering as _ordering

__all__ = [
    "TICKET_ACTOR_PREFIX",
    "TICKET_CREATE",
    "TICKET_UPDATE",
    "TicketChange",
    "TicketEvents",
    "TicketListener",
    "display_name",
    "person_by_account",
    "person_by_slack",
    "queue_update",
]

log = logging.getLogger(__name__)

# actors of changes that came from the tracker: nothing is sent back for them
TICKET_ACTOR_PREFIX = "jira:"


class TicketListener:
    """Queue ticket work for incident events, in the transaction that caused them."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    def __call__(self, session: Session, event: IncidentEvent) -> None:
        incident = event.incident
        assert incident.id is not None
        # the row commits with the event or not at all: a unique key needs no determinism
        stamp = uuid4().hex
        if isinstance(event, IncidentOpened):
            enqueue(
                session,
                kind=TICKET_CREATE,
                idempotency_key=f"ticket:{incident.id}:create",
                ordering_key=_ordering(incident.id),
                payload={},
                incident_id=incident.id,
                now=event.now,
            )
            return
        if event.actor.startswith(TICKET_ACTOR_PREFIX):
            return  # it came from the ticket: telling the ticket would only echo
        by = display_name(self._policy, event.actor)

        def comment(tag: str, text: str) -> None:
            queue_update(
                session, incident, op="comment", now=event.now, key=f"{tag}:{stamp}", text=text
            )

        if isinstance(event, StateChanged):
            why = f": {event.why}" if event.why else ""
            comment(
                f"state-{event.current.value}",
                f"State {event.previous.value} → {event.current.value} by {by}{why}",
            )
            if event.current is IncidentState.ACKNOWLEDGED and event.actor != SYSTEM:
                queue_update(
                    session,
                    incident,
                    op="assign",
                    now=event.now,
                    key=f"assign:{stamp}",
                    user=event.actor,
                )
            if event.current is IncidentState.RESOLVED:
                queue_update(session, incident, op="resolve", now=event.now, key=f"resolve:{stamp}")
            elif event.previous is IncidentState.RESOLVED:
                queue_update(session, incident, op="reopen", now=event.now, key=f"reopen:{stamp}")
        elif isinstance(event, SeverityChanged):
            how = f"set by {by}" if event.by_human else "raised by the rules"
            comment(
                f"severity-{event.current.value}",
                f"Severity {event.previous.value} → {event.current.value} ({how}): {event.reason}",
            )
            queue_update(
                session,
                incident,
                op="priority",
                now=event.now,
                key=f"priority:{stamp}",
                severity=event.current.value,
            )
        elif isinstance(event, RootCauseRecorded):
            comment("root-cause", f"Root cause recorded by {by}: {event.text}")
        elif isinstance(event, PostmortemDrafted):
            # rendered when delivered, from the record as it is then
            queue_update(
                session, incident, op="postmortem", now=event.now, key=f"postmortem:{stamp}", by=by
            )


@dataclass(frozen=True)
class TicketChange:
    """What the tracker says happened to a ticket, in its own words."""

    key: str
    actor_account: str | None
    actor_name: str
    status: str | None = None  # the status it moved to, when it moved
    status_done: bool = False  # that status is in the done category
    assignee_changed: bool = False
    assignee: str | None = None  # account after the change; None is unassigned
    assignee_name: str | None = None


class TicketEvents:
    """Apply tracker news to incidents; each call is one transaction."""

    def __init__(
        self,
        *,
        engine: Engine,
        policy: Policy,
        incidents: IncidentService,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._incidents = incidents
        self._clock = clock
        self._after_commit = after_commit

    def apply(self, change: TicketChange) -> list[str]:
        """Apply a change; return what it did, in words (empty when it was only an echo)."""
        done: list[str] = []
        with session_scope(self._engine) as session:
            incident = session.exec(
                select(IncidentRow).where(IncidentRow.jira_key == change.key).with_for_update()
            ).first()
            if incident is None or incident.id is None:
                log.info("Jira webhook for %s: no incident has this ticket", change.key)
                return []
            person = person_by_account(self._policy, change.actor_account)
            who = person.name if person is not None and person.name else change.actor_name
            actor = f"{TICKET_ACTOR_PREFIX}{who}"[:100]
            now = self._clock()
            if change.status is not None:
                done += self._status(session, incident, change, actor, who, now)
            if change.assignee_changed:
                done += self._assignee(session, incident, change, who, now)
        if done:
            self._after_commit()
        return done

    def _status(
        self,
        session: Session,
        incident: IncidentRow,
        change: TicketChange,
        actor: str,
        who: str,
        now: datetime,
    ) -> list[str]:
        assert incident.id is not None
        state = IncidentState(incident.state)
        if change.status_done and state.is_open:
            self._incidents.resolve_from_ticket(
                session,
                incident_id=incident.id,
                actor=actor,
                why=f"ticket {change.key} moved to {change.status} in Jira by {who}",
            )
            return ["resolved"]
        if not change.status_done and not state.is_open:
            # we never move a ticket out of done, so this is a person's doing: say so, change nothing
            journal.record(
                session,
                incident,
                kind=JournalKind.OBSERVATION,
                text=(
                    f"Ticket {change.key} moved back to {change.status} in Jira by {who}; "
                    "the incident stays resolved (reopen it here with a reason if needed)."
                ),
                author=actor,
                now=now,
            )
            return ["noted reopened ticket"]
        return []

    def _assignee(
        self, session: Session, incident: IncidentRow, change: TicketChange, who: str, now: datetime
    ) -> list[str]:
        if change.assignee == incident.jira_assignee:
            return []  # the assignment we made, echoed back
        incident.jira_assignee = change.assignee
        session.add(incident)
        target = change.assignee_name or change.assignee
        text = (
            f"Ticket {change.key} assigned to {target} in Jira by {who}."
            if change.assignee
            else f"Ticket {change.key} unassigned in Jira by {who}."
        )
        journal.record(
            session,
            incident,
            kind=JournalKind.OBSERVATION,
            text=text,
            author=f"{TICKET_ACTOR_PREFIX}{who}"[:100],
            now=now,
        )
        return ["journalled assignee"]
