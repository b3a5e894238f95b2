"""Outbox handlers that file a ticket once per incident and per handoff and keep it in step."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy
from bot.delivery.worker import Attempt
from bot.domain.incidents import SYSTEM, JournalKind
from bot.domain.people import display_name, person_by_slack
from bot.domain.redaction import SafeText
from bot.domain.views import IncidentView
from bot.integrations.ports import (
    ChatNotifier,
    GiveUp,
    TicketDraft,
    TicketRef,
    TicketTracker,
    TicketUser,
)
from bot.rendering.handoff_tickets import (
    handoff_decision_comment,
    handoff_dedup_label,
    handoff_description,
    handoff_labels,
    handoff_summary,
    within_lines,
)
from bot.rendering.reports import postmortem_sections, render_jira
from bot.rendering.tickets import (
    COMMENT_MARKER,
    DESCRIPTION_LIMIT,
    comment_body,
    dedup_label,
    ticket_description,
    ticket_labels,
    ticket_summary,
    wiki_link,
)
from storage import journal
from storage.db import readonly, session_scope
from storage.handoff_outbox import card_changed as handoff_card_changed
from storage.handoffs import handoff_view
from storage.models import HandoffRow, IncidentRow
from storage.repositories import incident_view
from storage.ticket_outbox import queue_update

__all__ = ["TicketDelivery"]

log = logging.getLogger(__name__)


class TicketDelivery:
    """Render from current state at delivery time; look before acting again after a lost answer."""

    def __init__(
        self,
        *,
        engine: Engine,
        tracker: TicketTracker,
        chat: ChatNotifier,
        safe: SafeText,
        policy: Policy,
        default_project: str | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._tracker = tracker
        self._chat = chat
        self._safe = safe
        self._policy = policy
        self._default_project = default_project
        self._clock = clock

    def project_for(self, workflow: str) -> str | None:
        """Return the Jira project of a workflow: its own, the policy's, else JIRA_PROJECT."""
        own = self._policy.workflows.get(workflow)
        return (
            (own.jira_project if own is not None else None)
            or self._policy.jira.project
            or self._default_project
        )

    def _thread_link(self, view: IncidentView) -> str | None:
        if view.slack_channel is None or view.slack_ts is None:
            return None
        try:
            return self._chat.permalink(channel=view.slack_channel, ts=view.slack_ts)
        except Exception as exc:
            # Slack being down must not hold the ticket back: the link follows as a comment
            log.warning("no permalink for %s yet: %s", view.public_id, exc)
            return None

    def create(self, attempt: Attempt) -> dict[str, Any]:
        """File the incident's ticket, or adopt the one an earlier attempt filed."""
        assert attempt.incident_id is not None
        with Session(readonly(self._engine)) as session:
            view = incident_view(session, attempt.incident_id, with_journal=False)
        if view is None:
            raise GiveUp(f"incident {attempt.incident_id} does not exist")
        if view.jira_key is not None:
            return {"key": view.jira_key, "existing": True}
        project = self.project_for(view.workflow)
        if not project:
            raise GiveUp(
                f"no Jira project for workflow {view.workflow!r}: set JIRA_PROJECT, jira.project "
                "or the workflow's jira_project"
            )
        label = dedup_label(view.public_id)
        # after a timeout or a 5xx Jira may have filed it already: look before filing again
        ref = self._tracker.find(project=project, label=label) if attempt.uncertain else None
        found = ref is not None
        link = None
        if ref is None:
            link = self._thread_link(view)
            jira = self._policy.jira
            ref = self._tracker.create(
                TicketDraft(
                    project=project,
                    summary=ticket_summary(view, self._safe),
                    description=ticket_description(view, self._safe, thread_link=link),
                    issue_type=jira.issue_type,
                    priority=jira.priority_for(view.severity),
                    labels=ticket_labels(view, self._safe, jira.labels),
                    dedup_label=label,
                )
            )
        # a ticket found again may lack the link (we cannot tell): then it follows as a comment
        self._store(attempt.incident_id, ref, linked=link is not None)
        return {"key": ref.key, "found": found}

    def _store(self, incident_id: int, ref: TicketRef, *, linked: bool) -> None:
        now = self._clock()
        with session_scope(self._engine) as session:
            row = session.get(IncidentRow, incident_id, with_for_update=True)
            assert row is not None
            if row.jira_key is not None:
                return  # another replica took over this row after its lease ran out and stored it
            row.jira_key = ref.key
            row.jira_url = ref.url
            row.jira_thread_linked = linked
            session.add(row)
            if not linked and row.slack_ts is not None:
                # the card is up but the ticket has no link to it (yet): add one
                queue_update(session, row, op="link", now=now, key="link")
            where = f": {ref.url}" if ref.url else ""
            journal.record(
                session,
                row,
                kind=JournalKind.ACTION,
                text=f"Jira ticket {ref.key} filed{where}",
                author=SYSTEM,
                now=now,
            )
            journal.card_changed(session, row, now)

    def card_posted(self, session: Session, incident: IncidentRow, now: datetime) -> None:
        """Link the thread from a ticket filed before the card was posted (in the card's commit)."""
        if incident.jira_key is not None and not incident.jira_thread_linked:
            queue_update(session, incident, op="link", now=now, key="link")

    def update(self, attempt: Attempt) -> dict[str, Any]:
        """Apply one change: comment, assignee, priority, resolve, reopen or the thread link."""
        assert attempt.incident_id is not None
        with Session(readonly(self._engine)) as session:
            row = session.get(IncidentRow, attempt.incident_id)
        if row is None:
            raise GiveUp(f"incident {attempt.incident_id} does not exist")
        if row.jira_key is None:
            # the ticket's creation gave up for good (it runs first in this ordering key)
            raise GiveUp(f"incident {attempt.incident_id} has no ticket")
        key = row.jira_key
        op = str(attempt.payload.get("op"))
        if op == "comment":
            return self._comment(attempt, key, str(attempt.payload.get("text", "")))
        if op == "assign":
            return self._assign(attempt.incident_id, key, str(attempt.payload.get("user")))
        if op == "priority":
            severity = str(attempt.payload.get("severity"))
            priority = self._policy.jira.priority_for(severity)
            if priority is None:
                return {"skipped": f"no priority for {severity}"}
            self._tracker.set_priority(key=key, priority=priority)
            return {"priority": priority}
        if op == "resolve":
            status = self._tracker.resolve(key=key, preferred=self._policy.jira.done_transitions)
            return {"status": status} if status else {"skipped": "already done"}
        if op == "reopen":
            status = self._tracker.reopen(key=key)
            return {"status": status} if status else {"skipped": "already open"}
        if op == "link":
            return self._link(attempt, row, key)
        if op == "postmortem":
            return self._postmortem(attempt, key, str(attempt.payload.get("by") or "someone"))
        raise GiveUp(f"unknown ticket operation {op!r}")

    def _comment(self, attempt: Attempt, key: str, text: str) -> dict[str, Any]:
        return self._add_comment(attempt, key, self._safe.jira(text))

    def _add_comment(self, attempt: Attempt, key: str, markup: str) -> dict[str, Any]:
        """Comment with markup already made safe, once: a retry looks for its marker first."""
        marker = COMMENT_MARKER.format(attempt.idempotency_key)
        if attempt.uncertain and self._tracker.has_comment(key=key, marker=marker):
            return {"comment": "found"}
        body = comment_body(markup, marker_id=attempt.idempotency_key)
        self._tracker.comment(key=key, body=body)
        return {"comment": "added"}

    def _postmortem(self, attempt: Attempt, key: str, by: str) -> dict[str, Any]:
        """Attach the postmortem draft, rendered from the incident's record as it is now."""
        assert attempt.incident_id is not None
        with Session(readonly(self._engine)) as session:
            view = incident_view(session, attempt.incident_id)
        if view is None:
            raise GiveUp(f"incident {attempt.incident_id} does not exist")
        esc = self._safe.jira
        title = f"Postmortem draft: {view.public_id} {esc(' '.join(view.title.split()))}"
        heading, *body = render_jira(title, postmortem_sections(view, esc)).split("\n")
        intro = f"Requested by {esc(by)} in Slack; the same draft is in the incident thread."
        markup = within_lines(
            [heading, intro, *body],
            DESCRIPTION_LIMIT,
            note="the whole draft is in the incident thread",
        )
        return self._add_comment(attempt, key, markup)

    def _account(self, key: str, slack_user: str) -> str | None:
        """Return the Jira account of a Slack user (policy person → account, else by email)."""
        person = person_by_slack(self._policy, slack_user)
        if person is None or not (person.jira_account or person.email):
            log.warning("%s: no Jira account or email for Slack user %s", key, slack_user)
            return None
        return self._tracker.account_for(
            TicketUser(account=person.jira_account, email=person.email)
        )

    def _assign(self, incident_id: int, key: str, slack_user: str) -> dict[str, Any]:
        account = self._account(key, slack_user)
        if account is None:
            return {"skipped": f"no Jira account for {slack_user}"}
        # noted before the call: Jira's webhook for this change may arrive before its answer
        with session_scope(self._engine) as session:
            row = session.get(IncidentRow, incident_id, with_for_update=True)
            assert row is not None
            row.jira_assignee = account
            session.add(row)
        self._tracker.assign(key=key, account=account)
        return {"assignee": account}

    def _link(self, attempt: Attempt, row: IncidentRow, key: str) -> dict[str, Any]:
        if row.jira_thread_linked:
            return {"skipped": "already linked"}
        if row.slack_channel is None or row.slack_ts is None:
            return {"skipped": "no thread"}
        link = self._chat.permalink(channel=row.slack_channel, ts=row.slack_ts)
        if link is None:
            return {"skipped": "no permalink here"}
        text = wiki_link("The incident thread in Slack", link, self._safe)
        marker = COMMENT_MARKER.format(attempt.idempotency_key)
        if not (attempt.uncertain and self._tracker.has_comment(key=key, marker=marker)):
            self._tracker.comment(
                key=key, body=comment_body(text, marker_id=attempt.idempotency_key)
            )
        with session_scope(self._engine) as session:
            fresh = session.get(IncidentRow, row.id, with_for_update=True)
            assert fresh is not None
            fresh.jira_thread_linked = True
            session.add(fresh)
        return {"linked": link}

    # -- handoffs (§8): a ticket per queued handoff ------------------------------------------

    def _handoff(self, attempt: Attempt) -> HandoffRow:
        handoff_id = int(attempt.payload["handoff_id"])
        with Session(readonly(self._engine)) as session:
            row = session.get(HandoffRow, handoff_id)
        if row is None:
            raise GiveUp(f"handoff {handoff_id} does not exist")
        return row

    def handoff_create(self, attempt: Attempt) -> dict[str, Any]:
        """File the handoff's ticket, or adopt the one an earlier attempt filed."""
        row = self._handoff(attempt)
        if row.jira_key is not None:
            return {"key": row.jira_key, "existing": True}
        workflow = self._policy.workflows.get(row.workflow)
        view = handoff_view(row, workflow_known=workflow is not None)
        project = self.project_for(view.workflow)
        if not project:
            raise GiveUp(
                f"no Jira project for workflow {view.workflow!r}: set JIRA_PROJECT, jira.project "
                "or the workflow's jira_project"
            )
        label = handoff_dedup_label(view.public_id)
        # after a timeout or a 5xx Jira may have filed it already: look before filing again
        ref = self._tracker.find(project=project, label=label) if attempt.uncertain else None
        found = ref is not None
        if ref is None:
            category = workflow.category.value if workflow is not None else None
            link = self._card_link(view.slack_channel, view.slack_ts, view.public_id)
            jira = self._policy.jira
            ref = self._tracker.create(
                TicketDraft(
                    project=project,
                    summary=handoff_summary(view, self._safe),
                    description=handoff_description(
                        view, self._safe, category=category, card_link=link
                    ),
                    issue_type=jira.issue_type,
                    priority=None,  # the project's default: priorities follow incident severity
                    labels=handoff_labels(view, self._safe, category=category, extra=jira.labels),
                    dedup_label=label,
                )
            )
        self._store_handoff(view.id, ref)
        return {"key": ref.key, "found": found}

    def _card_link(self, channel: str | None, ts: str | None, public_id: str) -> str | None:
        if channel is None or ts is None:
            return None
        try:
            return self._chat.permalink(channel=channel, ts=ts)
        except Exception as exc:
            # Slack being down must not hold the ticket back; the card names the ticket anyway
            log.warning("no permalink for the card of %s: %s", public_id, exc)
            return None

    def _store_handoff(self, handoff_id: int, ref: TicketRef) -> None:
        now = self._clock()
        with session_scope(self._engine) as session:
            row = session.get(HandoffRow, handoff_id, with_for_update=True)
            assert row is not None
            if row.jira_key is not None:
                return  # another replica took over this row after its lease ran out and stored it
            row.jira_key = ref.key
            session.add(row)
            handoff_card_changed(session, row, now)

    def handoff_update(self, attempt: Attempt) -> dict[str, Any]:
        """Apply one change to a handoff's ticket: assignee, comment, decision, done."""
        row = self._handoff(attempt)
        if row.jira_key is None:
            # the ticket's creation gave up for good (it runs first in this ordering key)
            raise GiveUp(f"handoff {row.id} has no ticket")
        key = row.jira_key
        op = str(attempt.payload.get("op"))
        if op == "assign":
            slack_user = str(attempt.payload.get("user"))
            account = self._account(key, slack_user)
            if account is None:
                return {"skipped": f"no Jira account for {slack_user}"}
            self._tracker.assign(key=key, account=account)
            return {"assignee": account}
        if op == "comment":
            return self._comment(attempt, key, str(attempt.payload.get("text", "")))
        if op == "decision":
            view = handoff_view(row)
            if view.decision is None:
                raise GiveUp(f"{view.public_id} has no decision")
            by = display_name(self._policy, view.decided_by) if view.decided_by else "someone"
            markup = handoff_decision_comment(view, self._safe, decided_by=by)
            return self._add_comment(attempt, key, markup)
        if op == "resolve":
            status = self._tracker.resolve(key=key, preferred=self._policy.jira.done_transitions)
            return {"status": status} if status else {"skipped": "already done"}
        raise GiveUp(f"unknown handoff ticket operation {op!r}")
