"""Handoff flows for Slack and the slash command: one transaction, one sentence back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session

from bot.domain.redaction import SafeText
from bot.handoffs.domain import Decision, HandoffIn, HandoffView, format_handoff_id
from bot.handoffs.service import HandoffService
from bot.rendering.handoffs import edit_modal, queue_text, reject_modal
from bot.services.errors import DomainError
from storage.db import StorageUnavailable, readonly, session_scope
from storage.handoffs import handoff_view
from storage.models import HandoffRow

__all__ = ["Answer", "HandoffRunner", "Received"]

log = logging.getLogger(__name__)

UNAVAILABLE = "The handoff database is unavailable right now; try again in a minute."
Groups = Mapping[str, Collection[str]] | None


@dataclass(frozen=True)
class Answer:
    """What to tell the person who acted; `ok` is False for a refusal."""

    text: str
    ok: bool


@dataclass(frozen=True)
class Received:
    """The webhook's answer: `{handoff_id, tier, status}`, whether it was a retry, whose it is."""

    handoff_id: str
    tier: str
    status: str
    duplicate: bool
    # the source that stored it: a retry answers only the source whose handoff it is
    source: str


class HandoffRunner:
    """Runs one reviewer action; never raises to the transport."""

    def __init__(
        self,
        *,
        engine: Engine,
        service: HandoffService,
        safe: SafeText,
        after_commit: Callable[[], None] = lambda: None,
        group_members: Callable[[Collection[str]], Mapping[str, Collection[str]]] | None = None,
    ) -> None:
        self._engine = engine
        self._service = service
        self._safe = safe
        self._after_commit = after_commit
        self._group_members = group_members

    @property
    def service(self) -> HandoffService:
        return self._service

    def _groups(self, given: Groups) -> Groups:
        """Return the members of the Slack user groups listed under reviewers."""
        if given is not None or self._group_members is None:
            return given
        listed = [
            m.removeprefix("group:")
            for m in self._service.policy.roles.reviewers
            if m.startswith("group:")
        ]
        return self._group_members(listed) if listed else None

    def _run(self, work: Callable[[Session], str]) -> Answer:
        try:
            with session_scope(self._engine) as session:
                text = work(session)
        except DomainError as exc:
            return Answer(str(exc), ok=False)
        except (OperationalError, InterfaceError):
            log.exception("database unavailable for a handoff action")
            return Answer(UNAVAILABLE, ok=False)
        self._after_commit()
        return Answer(text, ok=True)

    def receive(self, handoff: HandoffIn, *, source: str) -> Received:
        """Store a handoff durably (once per idempotency key); StorageUnavailable when down."""
        try:
            with session_scope(self._engine) as session:
                receipt = self._service.receive(session, handoff=handoff, source=source)
                row = receipt.handoff
                received = Received(
                    handoff_id=receipt.public_id,
                    tier=row.tier,
                    status=row.status,
                    duplicate=receipt.duplicate,
                    source=row.source,
                )
        except (OperationalError, InterfaceError) as exc:
            raise StorageUnavailable(str(exc.orig) if exc.orig else str(exc)) from exc
        if not received.duplicate:
            self._after_commit()
        return received

    # -- actions ----------------------------------------------------------------------------

    def claim(self, *, handoff_id: int, user: str, groups: Groups = None) -> Answer:
        """Take the lease; a loser is told who holds it."""
        svc = self._service
        members = self._groups(groups)

        def work(session: Session) -> str:
            outcome = svc.claim(session, handoff_id=handoff_id, actor=user, groups=members)
            until = outcome.handoff.lease_until
            verb = "renewed your claim on" if outcome.renewed else "claimed"
            shown = f"{until:%H:%M} UTC" if until is not None else "—"
            return f"You {verb} {format_handoff_id(handoff_id)}; it is yours until {shown}."

        return self._run(work)

    def release(self, *, handoff_id: int, user: str, groups: Groups = None) -> Answer:
        svc = self._service
        members = self._groups(groups)

        def work(session: Session) -> str:
            svc.release(session, handoff_id=handoff_id, actor=user, groups=members)
            return f"You released {format_handoff_id(handoff_id)}; it is back in the queue."

        return self._run(work)

    def decide(
        self,
        *,
        handoff_id: int,
        user: str,
        decision: Decision,
        edited_output: str | None = None,
        reason: str | None = None,
        groups: Groups = None,
    ) -> Answer:
        """Approve, edit or reject; the agent is told through its callback."""
        svc = self._service
        members = self._groups(groups)

        def work(session: Session) -> str:
            row = svc.decide(
                session,
                handoff_id=handoff_id,
                actor=user,
                decision=decision,
                edited_output=edited_output,
                reason=reason,
                groups=members,
            )
            told = (
                " The agent is told at its callback URL."
                if row.callback_url
                else " The agent reads it at GET /handoffs/" + format_handoff_id(handoff_id) + "."
            )
            words = {
                "approved": "approved",
                "edited": "approved with your edited output",
                "rejected": "rejected",
            }[row.status]
            return f"{format_handoff_id(handoff_id)} {words}.{told}"

        return self._run(work)

    def form(
        self,
        *,
        kind: Literal["edit", "reject"],
        handoff_id: int,
        user: str,
        channel: str | None,
        groups: Groups = None,
    ) -> dict[str, Any] | Answer:
        """Return the modal to open, or an Answer saying why the user may not decide."""
        svc = self._service
        members = self._groups(groups)
        try:
            with Session(readonly(self._engine)) as session:
                row = svc.may_decide(session, handoff_id=handoff_id, actor=user, groups=members)
                view = handoff_view(row, workflow_known=svc.workflow_known(row.workflow))
        except DomainError as exc:
            return Answer(str(exc), ok=False)
        except (OperationalError, InterfaceError):
            log.exception("database unavailable for a handoff form")
            return Answer(UNAVAILABLE, ok=False)
        if kind == "edit":
            return edit_modal(view, self._safe, channel)
        return reject_modal(view, self._safe, channel)

    # -- reading ----------------------------------------------------------------------------

    def view(self, handoff_id: int) -> HandoffView | None:
        """Return the handoff's read model, or None when there is none with that id."""
        with Session(readonly(self._engine)) as session:
            row = session.get(HandoffRow, handoff_id)
            if row is None:
                return None
            return handoff_view(row, workflow_known=self._service.workflow_known(row.workflow))

    def queue(self) -> str:
        """Return the `/ai-incident handoffs` answer."""
        svc = self._service
        try:
            with Session(readonly(self._engine)) as session:
                rows, total = svc.queue(session)
                views = [
                    handoff_view(r, workflow_known=svc.workflow_known(r.workflow)) for r in rows
                ]
        except (OperationalError, InterfaceError):
            log.exception("database unavailable for the handoff queue")
            return UNAVAILABLE
        return queue_text(views, total, self._safe, svc.clock())
