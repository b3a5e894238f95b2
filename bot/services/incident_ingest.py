"""Alerts into incidents: open, join, update or resolve from one notification."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.domain.alerts import AlertIn, Notification, group_id, plan_group
from bot.domain.incidents import (
    AlertsChanged,
    IncidentState,
    alerts_changed,
    format_incident_id,
    open_from_alerts,
    opens_incident,
)
from bot.domain.watch.history import ChangeSource, VersionKind
from bot.services.incident_outcomes import Lifecycle
from storage import incidents as repository
from storage import watch
from storage.models import IncidentRow

__all__ = ["AlertIngest", "IngestOutcome", "ai_versions"]

# the AI context's model, the one answering first, and its prompt version
_MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")


def ai_versions(
    workflow: str, alerts: Sequence[AlertIn], now: datetime
) -> Iterator[tuple[str, VersionKind, str, datetime]]:
    """Yield the model and prompt version the alerts' AI context names, seen at `now`."""
    for alert in alerts:
        context = alert.ai_context
        model = next((str(v) for k in _MODEL_KEYS if (v := context.get(k))), None)
        if model:
            yield workflow, VersionKind.MODEL, model, now
        prompt = context.get("prompt_version")
        if prompt:
            yield workflow, VersionKind.PROMPT, str(prompt), now


@dataclass(frozen=True)
class IngestOutcome:
    """What one notification did."""

    incident_id: int | None
    opened: bool
    duplicate: bool
    alerts_new: int
    alerts_changed: int
    resolved: bool

    @property
    def public_id(self) -> str | None:
        """Return `INC-<n>` or None when nothing was filed."""
        return format_incident_id(self.incident_id) if self.incident_id is not None else None


class AlertIngest:
    """Apply notifications to incidents; every call works inside the caller's transaction."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._life = lifecycle

    def ingest(self, session: Session, n: Notification) -> IngestOutcome:
        """Apply one notification: open, join, update or resolve; duplicates change nothing."""
        now = self._life.clock()
        key = group_id(n.source, n.group_key)
        group = repository.lock_group(session, key)
        if group is None:
            if not opens_incident(n):
                return IngestOutcome(None, False, True, 0, 0, False)
            try:
                with session.begin_nested():
                    return self._open(session, n, key, now)
            except IntegrityError:
                # another replica opened this group between our read and our insert: join it
                group = repository.lock_group(session, key)
                assert group is not None
        row = repository.lock(session, group.incident_id)
        assert row is not None
        return self._update(session, row, n, now)

    def _open(self, session: Session, n: Notification, key: str, now: datetime) -> IngestOutcome:
        outcome = open_from_alerts(n, group_key=key, policy=self._life.policy, now=now)
        row = repository.insert(session, outcome.incident)
        assert row.id is not None
        repository.add_group(
            session, key=key, incident_id=row.id, source=n.source, group_key=n.group_key, now=now
        )
        repository.add_alerts(session, row.id, n.alerts, now)
        watch.saw_versions(
            session, ai_versions(row.workflow, n.alerts, now), source=ChangeSource.ALERT
        )
        self._life.carry_out(session, row, outcome.incident, outcome, now)
        return IngestOutcome(row.id, True, False, len(n.alerts), 0, False)

    def _update(
        self, session: Session, row: IncidentRow, n: Notification, now: datetime
    ) -> IngestOutcome:
        assert row.id is not None
        fingerprints = sorted({a.fingerprint for a in n.alerts})
        held = repository.known_alerts(session, row.id, fingerprints)
        plan = plan_group(held.known, n.alerts)
        if plan.is_noop:
            return IngestOutcome(row.id, False, True, 0, 0, False)
        repository.add_alerts(session, row.id, plan.new, now)
        repository.update_alerts(session, held, plan, now)
        watch.saw_versions(
            session,
            ai_versions(row.workflow, [*plan.new, *plan.changed], now),
            source=ChangeSource.ALERT,
        )
        # only an all-resolved notification needs to know whether the rest of the group fires
        others = plan.all_resolved and repository.others_firing(session, row.id, fingerprints)
        before = repository.snapshot(row)
        change = AlertsChanged(n, plan, others, seen_firing=held.seen_firing())
        outcome = alerts_changed(before, change, policy=self._life.policy, now=now)
        self._life.carry_out(session, row, before, outcome, now)
        resolved = before.state.is_open and outcome.incident.state is IncidentState.RESOLVED
        return IngestOutcome(row.id, False, False, len(plan.new), len(plan.changed), resolved)
