"""Write page records and the outbox rows that deliver them, in the caller's transaction.

Each page to one person through one channel has a deterministic key, so recording it twice
(a retried job, a restarted bot, two replicas) records it once. Rows are ordered per incident
and provider, never under the chat key `incident:<id>`: a provider that is down holds only
its own rows, and a Slack DM to one person never waits for another's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.paging.channels import CHANNELS, PROVIDER_CHANNELS
from bot.paging.escalation import Contact
from storage.models import OutboxRow, PageRow
from storage.outbox import enqueue

__all__ = [
    "GROUP",
    "KINDS",
    "THREAD",
    "contact_json",
    "contact_of",
    "ordering_key",
    "paged_via",
    "queue_group",
    "queue_mention",
    "queue_page",
    "queue_pages",
    "queue_sync",
]

# the outbox kind of each channel's pages, as registered
KINDS = {c.name: c.kind for c in CHANNELS.values()}
THREAD = "page.thread"
GROUP = "page.group"
MAX_KEY = 200
MAX_ORDERING = 100


def _fit(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    return f"{text[: limit - 17]}#{digest}"


def ordering_key(incident_id: int, channel: str, person: str | None = None) -> str:
    """Return the delivery order key: per incident and provider; Slack DMs per person too."""
    if channel == "slack_dm" and person is not None:
        return _fit(f"page:{incident_id}:slack_dm:{person}", MAX_ORDERING)
    return _fit(f"page:{incident_id}:{channel}", MAX_ORDERING)


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "person": contact.person,
        "name": contact.name,
        "slack_id": contact.slack_id,
        "email": contact.email,
        "phone": contact.phone,
    }


def contact_of(data: dict[str, Any]) -> Contact:
    return Contact(
        person=str(data["person"]),
        name=data.get("name"),
        slack_id=data.get("slack_id"),
        email=data.get("email"),
        phone=data.get("phone"),
    )


def _queued(session: Session, key: str) -> bool:
    table: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
    found = session.execute(sa.select(table.c.id).where(table.c.idempotency_key == key)).first()
    return found is not None


def paged_via(session: Session, incident_id: int, channel: str) -> bool:
    """Return True if the incident was paged through `channel` (so acks are mirrored there)."""
    return (
        session.exec(
            select(PageRow.id)
            .where(PageRow.incident_id == incident_id, PageRow.channel == channel)
            .limit(1)
        ).first()
        is not None
    )


def queue_page(
    session: Session,
    *,
    incident_id: int,
    contact: Contact,
    channel: str,
    reason: str,
    why: str,
    key_base: str,
    now: datetime,
    run: int | None = None,
    round_: int | None = None,
    step: int | None = None,
    stop_if_handled: bool = True,
) -> bool:
    """Record a page to `contact` through `channel` and queue it; False if it was recorded before.

    `why` is the sentence the page carries ("escalation step 2 of 3"); with `stop_if_handled` a
    page still queued when the incident is acknowledged is not sent.
    """
    key = _fit(f"{key_base}:{contact.person}:{channel}", MAX_KEY)
    if session.exec(select(PageRow.id).where(PageRow.idempotency_key == key)).first():
        return False
    # a provider may have an alert open for the incident already (Opsgenie adds a responder)
    follow_up = channel in PROVIDER_CHANNELS and paged_via(session, incident_id, channel)
    page = PageRow(
        incident_id=incident_id,
        idempotency_key=key,
        reason=reason,
        run=run,
        round=round_,
        step=step,
        person=contact.person[:100],
        channel=channel,
        status="queued",
        created_at=now,
    )
    session.add(page)
    session.flush()
    enqueue(
        session,
        kind=KINDS[channel],
        idempotency_key=key,
        ordering_key=ordering_key(incident_id, channel, contact.person),
        payload={
            "action": "page",
            "page_id": page.id,
            "channel": channel,
            "contact": contact_json(contact),
            "why": why,
            "stop_if_handled": stop_if_handled,
            "follow_up": follow_up,
        },
        incident_id=incident_id,
        now=now,
    )
    return True


def queue_group(
    session: Session,
    *,
    incident_id: int,
    group: str,
    channels: Sequence[str],
    reason: str,
    why: str,
    key_base: str,
    now: datetime,
    run: int | None = None,
    round_: int | None = None,
    step: int | None = None,
    stop_if_handled: bool = True,
) -> bool:
    """Queue paging every member of a Slack user group (listed at delivery, then paged)."""
    key = _fit(f"{key_base}:group:{group}", MAX_KEY)
    if _queued(session, key):
        return False
    enqueue(
        session,
        kind=GROUP,
        idempotency_key=key,
        ordering_key=_fit(f"page:{incident_id}:group:{group}", MAX_ORDERING),
        payload={
            "group": group,
            "channels": list(channels),
            "reason": reason,
            "why": why,
            "key_base": key_base,
            "run": run,
            "round": round_,
            "step": step,
            "stop_if_handled": stop_if_handled,
        },
        incident_id=incident_id,
        now=now,
    )
    return True


def queue_pages(
    session: Session,
    *,
    incident_id: int,
    contacts: Sequence[Contact],
    groups: Sequence[str],
    channels: Sequence[str],
    reason: str,
    why: str,
    key_base: str,
    now: datetime,
    run: int | None = None,
    round_: int | None = None,
    step: int | None = None,
    stop_if_handled: bool = True,
) -> None:
    """Page every contact through every channel, and every user group, for one reason."""
    common: dict[str, Any] = {
        "incident_id": incident_id,
        "reason": reason,
        "why": why,
        "key_base": key_base,
        "now": now,
        "run": run,
        "round_": round_,
        "step": step,
        "stop_if_handled": stop_if_handled,
    }
    for contact in contacts:
        for channel in channels:
            queue_page(session, contact=contact, channel=channel, **common)
    for group in groups:
        queue_group(session, group=group, channels=channels, **common)


def queue_mention(
    session: Session,
    *,
    incident_id: int,
    users: Sequence[str],
    groups: Sequence[str],
    severity: str,
    key: str,
    now: datetime,
) -> bool:
    """Queue a thread reply that mentions the AI lead (users and user groups)."""
    key = _fit(key, MAX_KEY)
    if _queued(session, key):
        return False
    enqueue(
        session,
        kind=THREAD,
        idempotency_key=key,
        ordering_key=_fit(f"page:{incident_id}:thread", MAX_ORDERING),
        payload={"users": list(users), "groups": list(groups), "severity": severity},
        incident_id=incident_id,
        now=now,
    )
    return True


def queue_sync(
    session: Session, *, incident_id: int, channel: str, action: str, now: datetime
) -> bool:
    """Mirror an acknowledgement or resolution to a provider the incident was paged through."""
    if not paged_via(session, incident_id, channel):
        return False
    enqueue(
        session,
        kind=KINDS[channel],
        idempotency_key=_fit(
            f"sync:{incident_id}:{channel}:{action}:{now.timestamp():.6f}", MAX_KEY
        ),
        ordering_key=ordering_key(incident_id, channel),
        payload={"action": action, "channel": channel},
        incident_id=incident_id,
        now=now,
    )
    return True
