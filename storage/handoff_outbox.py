"""The outbox rows a handoff change records: its review card, thread lines, the agent's callback."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.handoffs.domain import Decision, format_handoff_id
from storage.models import HandoffRow
from storage.outbox import enqueue

__all__ = [
    "CALLBACK",
    "CARD",
    "THREAD",
    "callback_body",
    "callback_queued",
    "card_changed",
    "card_posted",
    "iso",
    "thread_line",
]

CARD = "handoff.card"
THREAD = "handoff.thread"
CALLBACK = "handoff.callback"


def _ordering(handoff_id: int) -> str:
    # the handoff's own chat key: never an incident's, so neither holds the other up
    return f"handoff:{handoff_id}"


def iso(value: datetime | None) -> str | None:
    """Return an instant as ISO 8601 text, or None."""
    return value.isoformat() if value is not None else None


def card_posted(session: Session, handoff: HandoffRow, now: datetime) -> None:
    """Queue the first post of the review card."""
    assert handoff.id is not None
    enqueue(
        session,
        kind=CARD,
        idempotency_key=f"handoff-card:{handoff.id}:post",
        ordering_key=_ordering(handoff.id),
        payload={"handoff_id": handoff.id},
        now=now,
    )


def card_changed(session: Session, handoff: HandoffRow, now: datetime) -> None:
    """Queue a refresh of the review card (rendered from current state when delivered).

    Other modules call this after changing what the card shows (a ticket key, say).
    """
    assert handoff.id is not None
    enqueue(
        session,
        kind=CARD,
        # unique per refresh: two refreshes can share an instant
        idempotency_key=f"handoff-card:{handoff.id}:update:{uuid.uuid4().hex}",
        ordering_key=_ordering(handoff.id),
        payload={"handoff_id": handoff.id},
        now=now,
        coalesce_key=f"handoff-card-update:{handoff.id}",
    )


def thread_line(session: Session, handoff: HandoffRow, line: dict[str, Any], now: datetime) -> None:
    """Queue one line in the review card's thread."""
    assert handoff.id is not None
    enqueue(
        session,
        kind=THREAD,
        idempotency_key=f"handoff-thread:{handoff.id}:{line['event']}:{uuid.uuid4().hex}",
        ordering_key=_ordering(handoff.id),
        payload={"handoff_id": handoff.id, "line": line},
        now=now,
    )


def callback_body(handoff: HandoffRow) -> dict[str, Any]:
    """Return what the agent receives at its callback URL once the handoff is decided."""
    public = format_handoff_id(handoff.id or 0)
    decision = handoff.decision
    output: str | None = None
    if decision == Decision.APPROVED.value:
        output = handoff.attempted_response
    elif decision == Decision.EDITED.value:
        output = handoff.edited_output
    return {
        "type": "handoff.decision",
        # the same on every delivery attempt: a handoff is decided once
        "idempotency_key": f"handoff-decision:{public}",
        "handoff_id": public,
        "handoff_idempotency_key": handoff.idempotency_key,
        "workflow": handoff.workflow,
        "tier": handoff.tier,
        "status": handoff.status,
        "decision": decision,
        "output": output,
        "edited_output": handoff.edited_output,
        "reason": handoff.reject_reason,
        "proposed_action": handoff.proposed_action if decision != "rejected" else None,
        "claimed_by": handoff.claimed_by,
        "decided_by": handoff.decided_by,
        "received_at": iso(handoff.received_at),
        "decided_at": iso(handoff.decided_at),
    }


def callback_queued(session: Session, handoff: HandoffRow, now: datetime) -> None:
    """Queue the decision's delivery to the agent's callback URL."""
    enqueue(
        session,
        kind=CALLBACK,
        idempotency_key=f"handoff-callback:{handoff.id}",
        # its own key: a callback target that is down holds up nothing else
        ordering_key=f"handoff-callback:{handoff.id}",
        payload={
            "handoff_id": handoff.id,
            "url": handoff.callback_url,
            "source": handoff.source,
            "body": callback_body(handoff),
        },
        now=now,
    )
