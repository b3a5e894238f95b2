"""A Jira ticket per queued handoff (§8, §11), kept in step with the handoff.

`HandoffTicketListener` hears handoff events inside their transaction and queues outbox rows on
the Jira lane: the ticket's creation when a handoff of tier review or human is queued, then the
assignee when a reviewer claims it, a comment when it goes back to the queue or misses an SLA,
and the decision as a comment followed by the move to done. Each handoff's rows share their own
ordering key, so they are delivered in order, after the creation, and a Jira that is down holds
up nothing but them. What the ticket shows is rendered when the row is delivered, from the
handoff as it is then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlmodel import Session

from bot.config import Policy
from bot.handoffs.domain import SlaAction, SlaClock, Tier, format_handoff_id
from bot.handoffs.events import (
    HandoffClaimed,
    HandoffDecided,
    HandoffEvent,
    HandoffQueued,
    HandoffReleased,
    HandoffSlaMissed,
)
from bot.services.tickets import display_name
from storage.models import HandoffRow
from storage.outbox import enqueue

__all__ = [
    "HANDOFF_TICKET_CREATE",
    "HANDOFF_TICKET_UPDATE",
    "HandoffTicketListener",
    "ordering_key",
]

HANDOFF_TICKET_CREATE = "handoff.ticket.create"
HANDOFF_TICKET_UPDATE = "handoff.ticket.update"

_SLA_STEP = {
    SlaAction.REMIND: "a reminder went to the review card's thread",
    SlaAction.ONCALL: "on-call was mentioned",
    SlaAction.PAGE: "on-call is being paged",
}
_CLOCK_VERB = {SlaClock.CLAIM: "claimed", SlaClock.DECIDE: "decided"}


def ordering_key(handoff_id: int) -> str:
    """Return the ordering key of a handoff's ticket rows (never an incident's or a card's)."""
    return f"jira:{format_handoff_id(handoff_id)}"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "its deadline"


class HandoffTicketListener:
    """Queue ticket work for handoff events, in the transaction that caused them."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    def __call__(self, session: Session, event: HandoffEvent) -> None:
        row = event.handoff
        if row.id is None or row.tier == Tier.AUTO.value:
            return  # auto-tier handoffs are recorded and counted; nobody reviews them
        public = format_handoff_id(row.id)
        if isinstance(event, HandoffQueued):
            enqueue(
                session,
                kind=HANDOFF_TICKET_CREATE,
                idempotency_key=f"handoff-ticket:{row.id}:create",
                ordering_key=ordering_key(row.id),
                payload={"handoff_id": row.id},
                now=event.now,
            )
        elif isinstance(event, HandoffClaimed):
            if not event.renewed:
                self._queue(session, row, event.now, "assign", op="assign", user=event.actor)
        elif isinstance(event, HandoffReleased):
            holder = self._name(event.actor)
            text = (
                f"The claim of {holder} expired; {public} is back in the queue."
                if event.expired
                else f"{public} released by {holder}; it is back in the queue."
            )
            self._queue(session, row, event.now, "released", op="comment", text=text)
        elif isinstance(event, HandoffDecided):
            # the decision is rendered when delivered, from the stored decision and output
            self._queue(session, row, event.now, "decision", op="decision")
            self._queue(session, row, event.now, "resolve", op="resolve")
        elif isinstance(event, HandoffSlaMissed):
            due = row.claim_due_at if event.clock is SlaClock.CLAIM else row.decide_due_at
            step = _SLA_STEP[event.action]
            if event.oncall and event.action is not SlaAction.REMIND:
                step += f" ({', '.join(self._name(user) for user in event.oncall)})"
            text = (
                f"SLA missed: {public} was not {_CLOCK_VERB[event.clock]} by {_when(due)}; {step}."
            )
            self._queue(
                session, row, event.now, f"sla-{event.clock.value}", op="comment", text=text
            )

    def _name(self, actor: str | None) -> str:
        return display_name(self._policy, actor) if actor else "nobody"

    @staticmethod
    def _queue(session: Session, row: HandoffRow, now: datetime, tag: str, **payload: Any) -> None:
        assert row.id is not None
        enqueue(
            session,
            kind=HANDOFF_TICKET_UPDATE,
            # the row commits with the event or not at all: a unique key needs no determinism
            idempotency_key=f"handoff-ticket:{row.id}:{tag}:{uuid4().hex}",
            ordering_key=ordering_key(row.id),
            payload={"handoff_id": row.id, **payload},
            now=now,
        )
