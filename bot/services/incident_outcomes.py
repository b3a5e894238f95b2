"""What the incident use cases share: load a row, carry a decision's outcome out, translate
the lifecycle's refusals into the use cases' errors.

Carrying out writes the new snapshot onto the row, the journal entries and the card and report
posts (outbox rows), and tells the listeners each event with the row as it was at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import assert_never

from sqlmodel import Session

from bot.config import Policy
from bot.domain import incidents as lifecycle
from bot.domain.incidents import (
    CardChanged,
    CardPosted,
    Entry,
    GroupClosed,
    IllegalTransition,
    Incident,
    MissingReason,
    Outcome,
    ReportRequested,
)
from bot.services import events
from bot.services.errors import IncidentNotFound, InvalidTransition, ReasonRequired
from storage import incidents as repository
from storage import journal
from storage.models import IncidentRow

__all__ = ["Lifecycle", "refusals"]


@contextmanager
def refusals(incident_id: int | None = None) -> Iterator[None]:
    """Turn the lifecycle's refusals into the typed errors the edges answer."""
    try:
        yield
    except IllegalTransition as e:
        raise InvalidTransition(incident_id or 0, e.state.value, e.action) from e
    except MissingReason as e:
        raise ReasonRequired(e.action) from e


def _event(row: IncidentRow, effect: lifecycle.Event, now: datetime) -> events.IncidentEvent:
    match effect:
        case lifecycle.IncidentOpened(actor=actor, declared=declared):
            return events.IncidentOpened(incident=row, actor=actor, now=now, declared=declared)
        case lifecycle.StateMoved(previous=previous, current=current, actor=actor, why=why):
            return events.StateChanged(
                incident=row, previous=previous, current=current, actor=actor, now=now, why=why
            )
        case lifecycle.SeverityMoved() as e:
            return events.SeverityChanged(
                incident=row,
                previous=e.previous,
                current=e.current,
                actor=e.actor,
                now=now,
                reason=e.reason,
                by_human=e.by_human,
            )
        case lifecycle.RootCauseSet(text=text, actor=actor):
            return events.RootCauseRecorded(incident=row, text=text, actor=actor, now=now)
        case lifecycle.PostmortemRequested(actor=actor):
            return events.PostmortemDrafted(incident=row, actor=actor, now=now)
    assert_never(effect)


class Lifecycle:
    """The policy, clock and listeners every part of the incident use cases works with."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        listeners: list[events.Listener],
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.listeners = listeners

    def load(self, session: Session, incident_id: int) -> IncidentRow:
        """Return the incident row locked for this transaction; raise IncidentNotFound."""
        row = repository.lock(session, incident_id)
        if row is None:
            raise IncidentNotFound(incident_id)
        return row

    def carry_out(
        self, session: Session, row: IncidentRow, before: Incident, outcome: Outcome, now: datetime
    ) -> list[int]:
        """Store the outcome and its effects in order; return the ids of the journal entries."""
        entry_ids: list[int] = []
        current = before
        for effect in outcome.effects:
            if isinstance(effect, Entry):
                entry_ids.append(
                    journal.record(
                        session,
                        row,
                        kind=effect.kind,
                        text=effect.text,
                        author=effect.author,
                        now=now,
                        batch=effect.batch,
                    )
                )
            elif isinstance(effect, CardPosted):
                journal.card_posted(session, row, now)
            elif isinstance(effect, CardChanged):
                journal.card_changed(session, row, now)
            elif isinstance(effect, GroupClosed):
                assert row.id is not None
                repository.close_group(session, row.id)
            elif isinstance(effect, ReportRequested):
                journal.report(session, row, name=effect.name, now=now)
            else:
                # a listener sees the row as it was when the event happened
                repository.save(session, row, current, effect.incident)
                current = effect.incident
                events.publish(session, self.listeners, _event(row, effect, now))
        repository.save(session, row, current, outcome.incident)
        return entry_ids
