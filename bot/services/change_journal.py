"""The change log into incidents: each new model or prompt version, journalled once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.incidents import SYSTEM, IncidentState, JournalKind
from bot.domain.watch.changes import journal_text
from storage import journal, watch
from storage.models import IncidentRow

__all__ = ["ChangeJournal"]


class ChangeJournal:
    """The scheduler's job that journals each change into its workflow's open incidents.

    A change is claimed (marked journalled) and journalled in the same transaction, so with
    several replicas each change is journalled once; one seen while its workflow has no open
    incident is marked all the same (the card and the postmortem list it later).
    """

    def __init__(self, *, policy: Policy, clock: Callable[[], datetime]) -> None:
        self._zone = ZoneInfo(policy.timezone)
        self._clock = clock

    def __call__(self, session: Session) -> int:
        """Journal the changes not journalled yet; return how many thread posts were queued."""
        now = self._clock()
        changes = watch.claim_unjournalled(session, now=now)
        if not changes:
            return 0
        workflows = sorted({change.workflow for change in changes})
        incidents = session.exec(
            select(IncidentRow)
            .where(
                IncidentRow.workflow.in_(workflows),  # type: ignore[attr-defined]
                IncidentRow.state != IncidentState.RESOLVED.value,
            )
            .order_by(IncidentRow.id)  # type: ignore[arg-type]
        ).all()
        queued = 0
        for change in changes:
            text = journal_text(change, self._zone, now)
            for incident in incidents:
                if incident.workflow != change.workflow:
                    continue
                journal.record(
                    session, incident, kind=JournalKind.CHANGE, text=text, author=SYSTEM, now=now
                )
                queued += 1
        return queued
