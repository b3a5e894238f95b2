"""Handoff SLAs meet on-call: who is on call for a workflow, and the page step of a missed SLA.

A handoff whose SLA ran past the reminder and the on-call mention is paged through the
escalation machinery: it becomes an incident of its workflow (so the page has an owner, a
journal and an Acknowledge button), and whoever is on call for that workflow is paged for it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session

from bot.config import Policy
from bot.domain.severity import Severity
from bot.handoffs.domain import SlaAction, format_handoff_id
from bot.handoffs.events import HandoffEvent, HandoffSlaMissed
from bot.handoffs.service import policy_oncall
from bot.paging.service import PagingService
from bot.services.errors import DomainError
from bot.services.incidents import IncidentService

__all__ = ["HandoffPaging"]

log = logging.getLogger(__name__)

SYSTEM = "ai-incident"


class HandoffPaging:
    """`oncall` for HandoffService(oncall=...); itself one of its `pagers`."""

    def __init__(
        self, *, policy: Policy, incidents: IncidentService, paging: PagingService
    ) -> None:
        self._policy = policy
        self._incidents = incidents
        self._paging = paging
        self._fallback = policy_oncall(policy)

    def _schedules_of(self, workflow: str) -> list[str]:
        name = self._policy.workflow(workflow).escalation_policy or (
            self._policy.default_escalation_policy
        )
        policy = self._policy.escalation_policies.get(name or "")
        if policy is None:
            return list(self._policy.schedules)
        named = [t.schedule for step in policy.steps for t in step.notify if t.schedule]
        return list(dict.fromkeys(named)) or list(self._policy.schedules)

    def oncall(self, session: Session, workflow: str, now: datetime) -> list[str]:
        """Return the Slack ids of whoever is on call for the workflow, else the AI lead."""
        wanted = set(self._schedules_of(workflow))
        ids = [
            answer.person.slack_id
            for answer in self._paging.who_is_on_call(session)
            if answer.schedule in wanted and answer.person is not None and answer.person.slack_id
        ]
        return list(dict.fromkeys(ids)) or self._fallback(session, workflow, now)

    def __call__(self, session: Session, event: HandoffEvent) -> None:
        """Page for a handoff whose SLA reached its page step."""
        if not isinstance(event, HandoffSlaMissed) or event.action is not SlaAction.PAGE:
            return
        row = event.handoff
        assert row.id is not None
        public = format_handoff_id(row.id)
        clock = event.clock.value.replace("_", " ")
        incident = self._incidents.declare(
            session,
            title=f"{public} ({row.tier} tier) is past its {clock} SLA",
            actor=SYSTEM,
            severity=Severity.P2,
            workflow=row.workflow,
            reason=f"handoff {public} missed its {clock} SLA after a reminder and an on-call "
            "mention",
        )
        assert incident.id is not None
        try:
            self._paging.page_by_hand(session, incident_id=incident.id, actor=SYSTEM, oncall=True)
        except DomainError as exc:
            # nobody on call: the P2 already notifies the AI lead; say so in the journal
            self._incidents.note(
                session,
                incident_id=incident.id,
                actor=SYSTEM,
                text=f"No on-call page for {public}: {exc}",
            )
