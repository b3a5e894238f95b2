"""Outbox handlers that page people: Slack DMs, PagerDuty, Opsgenie, the webhook, thread mentions.

Every page and every mirrored acknowledgement goes through `page`, which picks the channel's
`Pager`. A page that fails for good, or keeps failing, is journalled in the incident thread
("Page to Alice via PagerDuty failed: …"); a page is given up after `PAGE_MAX_ATTEMPTS`, far
sooner than other deliveries, because a page an hour late helps nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy
from bot.delivery.worker import Attempt, Handler
from bot.domain.incidents import JournalKind, format_incident_id
from bot.domain.permissions import person_of
from bot.domain.redaction import SafeText
from bot.integrations.ports import ChatNotifier, GiveUp, NotYet, RetryLater, post_once
from bot.paging.escalation import Contact
from bot.paging.providers.ports import PageMessage, Pager
from bot.rendering.pages import mention_text
from storage import journal
from storage.db import readonly, session_scope
from storage.models import IncidentRow, PageRow
from storage.pages import GROUP, KINDS, THREAD, contact_of, queue_page

__all__ = ["FAILING_NOTICE_AT", "PAGE_MAX_ATTEMPTS", "PagingDelivery", "page_message"]

log = logging.getLogger(__name__)

PAGE_MAX_ATTEMPTS = 8  # about four minutes of backoff
# a mention waits for its incident's card, which a busy channel (paced at one post a second)
# can take a while to reach: about two minutes at 2 s a try before it gives up
CARD_WAIT_ATTEMPTS = 60
FAILING_NOTICE_AT = 3  # journal "is failing" once, at this attempt
GROUP_LOOKUP_ATTEMPTS = 3
AUTHOR = "paging"  # the author of paging's journal entries
_PAST = {"acknowledge": "acknowledged", "resolve": "resolved"}

GroupMembers = Callable[[Collection[str]], Mapping[str, Collection[str]]]


def page_message(incident: IncidentRow, payload: Mapping[str, Any], safe: SafeText) -> PageMessage:
    """Return what a page says, every text from the incident redacted (providers add no markup)."""
    assert incident.id is not None
    text = safe.plain
    contact = payload.get("contact")
    return PageMessage(
        incident_id=incident.id,
        public_id=format_incident_id(incident.id),
        title=text(incident.title),
        severity=incident.severity,
        workflow=text(incident.workflow),
        category=incident.category,
        state=incident.state,
        reason=text(str(payload.get("why") or "")),
        person=contact_of(contact) if contact else None,
        slack_channel=incident.slack_channel,
        slack_ts=incident.slack_ts,
        severity_reasons=tuple(text(str(r.get("text", ""))) for r in incident.severity_reasons),
        details={
            text(str(k)): text(str(v))
            for k, v in incident.ai_context.items()
            if v not in (None, "")
        },
        follow_up=bool(payload.get("follow_up")),
    )


class PagingDelivery:
    """Deliver page rows; render from the incident's current state at delivery time."""

    def __init__(
        self,
        *,
        engine: Engine,
        pagers: Mapping[str, Pager],
        chat: ChatNotifier,
        safe: SafeText,
        policy: Policy,
        clock: Callable[[], datetime],
        group_members: GroupMembers | None = None,
        default_channel: str = "#ai-incidents",
    ) -> None:
        self._engine = engine
        self._pagers = pagers
        self._chat = chat
        self._safe = safe
        self._policy = policy
        self._clock = clock
        self._group_members = group_members
        self._default_channel = default_channel

    def handlers(self) -> dict[str, Handler]:
        """Return the outbox kinds this delivers, with their handlers."""
        out: dict[str, Handler] = {kind: self.page for kind in KINDS.values()}
        out[THREAD] = self.mention
        out[GROUP] = self.group
        return out

    # -- reading ----------------------------------------------------------------------------

    def _incident(self, incident_id: int | None) -> IncidentRow:
        if incident_id is None:
            raise GiveUp("a page without an incident")
        with Session(readonly(self._engine)) as session:
            incident = session.get(IncidentRow, incident_id)
        if incident is None:
            raise GiveUp(f"incident {incident_id} does not exist")
        return incident

    def _message(self, incident: IncidentRow, payload: Mapping[str, Any]) -> PageMessage:
        return page_message(incident, payload, self._safe)

    # -- writing ----------------------------------------------------------------------------

    def _mark(self, page_id: Any, status: str, error: str | None = None) -> None:
        if page_id is None:
            return
        values: dict[str, Any] = {"status": status, "error": error[:2000] if error else None}
        if status == "sent":
            values["sent_at"] = self._clock()
        with session_scope(self._engine) as session:
            session.execute(sa.update(PageRow).where(sa.column("id") == page_id).values(**values))

    def _journal(self, incident: IncidentRow, text: str, kind: JournalKind) -> None:
        with session_scope(self._engine) as session:
            journal.record(
                session, incident, kind=kind, text=text, author=AUTHOR, now=self._clock()
            )

    def _failure(
        self, incident: IncidentRow, pager: Pager, payload: Mapping[str, Any], why: str, final: bool
    ) -> None:
        action = payload.get("action", "page")
        if action == "page":
            contact = payload.get("contact") or {}
            who = contact.get("name") or contact.get("person") or "someone"
            text = (
                f"Page to {who} via {pager.name} failed: {why}"
                if final
                else f"Page to {who} via {pager.name} is failing ({why}); still trying."
            )
            if final:
                self._mark(payload.get("page_id"), "failed", why)
        else:
            public = format_incident_id(incident.id or 0)
            past = _PAST.get(str(action), str(action))
            text = (
                f"Could not tell {pager.name} that {public} is {past}: {why}"
                if final
                else f"Telling {pager.name} that {public} is {past} is failing ({why}); still trying."
            )
        self._journal(incident, text, JournalKind.RESULT)

    # -- handlers ---------------------------------------------------------------------------

    def page(self, attempt: Attempt) -> dict[str, Any]:
        """Page one person through one channel, or mirror an acknowledgement or resolution."""
        payload = attempt.payload
        channel = str(payload.get("channel"))
        pager = self._pagers.get(channel)
        if pager is None:
            raise GiveUp(f"no pager for channel {channel!r}")
        incident = self._incident(attempt.incident_id)
        action = str(payload.get("action", "page"))
        if action == "page" and payload.get("stop_if_handled") and incident.state != "triggered":
            self._mark(payload.get("page_id"), "cancelled", f"not sent: {incident.state} first")
            return {"skipped": f"the incident was {incident.state} before the page went out"}
        message = self._message(incident, payload)
        try:
            if action == "page":
                result = pager.page(
                    message, key=attempt.idempotency_key, uncertain=attempt.uncertain
                )
            elif action == "acknowledge":
                result = pager.acknowledge(message, key=attempt.idempotency_key)
            else:
                result = pager.resolve(message, key=attempt.idempotency_key)
        except NotYet:
            raise  # paced, not failing: the worker defers the row
        except GiveUp as exc:
            self._failure(incident, pager, payload, str(exc), final=True)
            raise
        except Exception as exc:
            why = str(exc) or type(exc).__name__
            if attempt.number >= PAGE_MAX_ATTEMPTS:
                self._failure(
                    incident,
                    pager,
                    payload,
                    f"{why} (gave up after {attempt.number} attempts)",
                    True,
                )
                raise GiveUp(f"gave up after {attempt.number} attempts: {why}") from exc
            if attempt.number == FAILING_NOTICE_AT:
                self._failure(incident, pager, payload, why, final=False)
            raise
        self._mark(payload.get("page_id"), "sent")
        return result

    def mention(self, attempt: Attempt) -> dict[str, Any]:
        """Mention the AI lead in the incident thread (a real mention, which notifies)."""
        incident = self._incident(attempt.incident_id)
        if incident.slack_ts is None:
            # the card's own delivery posts it; the mention belongs in its thread. A card that
            # never gets posted (its channel is gone) must not keep this row for ever: the AI
            # lead has the direct message anyway
            if attempt.number >= CARD_WAIT_ATTEMPTS:
                raise GiveUp("the incident card was never posted; no thread to mention in")
            raise RetryLater("the incident card is not posted yet", retry_after=2.0)
        channel = incident.slack_channel or self._default_channel
        payload = attempt.payload
        text = mention_text(
            [str(u) for u in payload.get("users", [])],
            [str(g) for g in payload.get("groups", [])],
            str(payload.get("severity", incident.severity)),
        )
        posted = post_once(
            self._chat,
            channel=channel,
            text=text,
            key=attempt.idempotency_key,
            thread_ts=incident.slack_ts,
            uncertain=attempt.uncertain,
            sent=attempt.sent,
        )
        return {"ts": posted.ts}

    def _contact(self, slack_user: str) -> Contact:
        person = person_of(self._policy, slack_user)
        if person is None:
            return Contact(person=slack_user, slack_id=slack_user)
        p = self._policy.people[person]
        return Contact(
            person=person, name=p.name, slack_id=p.slack_id, email=p.email, phone=p.phone
        )

    def group(self, attempt: Attempt) -> dict[str, Any]:
        """List a Slack user group's members and page each of them."""
        incident = self._incident(attempt.incident_id)
        payload = attempt.payload
        group = str(payload["group"])
        if self._group_members is None:
            # local mode: no Slack to list the members; the console pager says who it would be
            who = Contact(person=f"group:{group}", name=f"the members of Slack user group {group}")
            message = self._message(incident, {**payload, "contact": None})
            pager = self._pagers["slack_dm"]
            return pager.page(
                replace(message, person=who), key=attempt.idempotency_key, uncertain=False
            )
        members = sorted(self._group_members([group]).get(group, ()))
        if not members:
            if attempt.number < GROUP_LOOKUP_ATTEMPTS:
                raise RetryLater(f"Slack listed no members of user group {group}", 5.0)
            self._journal(
                incident,
                f"Slack user group {group} has no members Slack would list; nobody paged "
                "through it.",
                JournalKind.RESULT,
            )
            return {"members": 0}
        with session_scope(self._engine) as session:
            for member in members:
                for channel in payload["channels"]:
                    queue_page(
                        session,
                        incident_id=incident.id or 0,
                        contact=self._contact(member),
                        channel=str(channel),
                        reason=str(payload["reason"]),
                        why=str(payload["why"]),
                        key_base=str(payload["key_base"]),
                        now=self._clock(),
                        run=payload.get("run"),
                        round_=payload.get("round"),
                        step=payload.get("step"),
                        stop_if_handled=bool(payload.get("stop_if_handled", True)),
                    )
        return {"members": len(members)}
