"""The kill switch (§9): pause and resume a workflow, journalled and audited, read by agents."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.incidents import IncidentState, JournalKind, format_incident_id
from bot.domain.killswitch import SwitchState
from bot.domain.permissions import has_role
from bot.domain.severity import Severity
from bot.services.errors import NotAResponder, UnknownWorkflow
from bot.services.events import IncidentEvent, IncidentOpened, SeverityChanged
from storage import journal
from storage.models import IncidentRow, SwitchAuditRow, WorkflowSwitchRow

__all__ = ["AUTO_PAUSE", "Flip", "KillSwitchService"]

AUTO_PAUSE = "ai-incident"

GroupMembers = Mapping[str, Collection[str]] | None


@dataclass(frozen=True)
class Flip:
    """What a pause or resume did."""

    state: SwitchState
    changed: bool
    incidents: tuple[int, ...] = ()


def _state(row: WorkflowSwitchRow) -> SwitchState:
    return SwitchState(
        workflow=row.workflow,
        enabled=row.enabled,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        reason=row.reason,
        version=row.version,
    )


class KillSwitchService:
    """Every method works inside the caller's transaction."""

    def __init__(self, *, policy: Policy, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._clock = clock

    def known(self) -> list[str]:
        """Return the workflows that have a switch: those of the policy file and the default."""
        return sorted({*self._policy.workflows, self._policy.default_workflow})

    def _default(self, workflow: str) -> SwitchState:
        enabled = self._policy.workflow(workflow).kill_switch_default == "enabled"
        return SwitchState(workflow=workflow, enabled=enabled)

    def _check(self, workflow: str) -> None:
        if workflow not in self.known():
            raise UnknownWorkflow(workflow, self.known())

    def state(self, session: Session, workflow: str) -> SwitchState:
        """Return the workflow's switch; UnknownWorkflow if the policy file has no such workflow."""
        self._check(workflow)
        return self._from_row(session.get(WorkflowSwitchRow, workflow), workflow)

    def states(self, session: Session) -> list[SwitchState]:
        """Return every known workflow's switch, by name."""
        rows = {r.workflow: r for r in session.exec(select(WorkflowSwitchRow)).all()}
        return [self._from_row(rows.get(name), name) for name in self.known()]

    def _from_row(self, row: WorkflowSwitchRow | None, workflow: str | None = None) -> SwitchState:
        if row is None or row.version == 0:
            name = row.workflow if row is not None else workflow
            assert name is not None
            return self._default(name)
        return _state(row)

    def is_paused(self, session: Session, workflow: str) -> bool:
        """Return True when the workflow is switched to humans (unknown workflows never are)."""
        if workflow not in self.known():
            return False
        return not self.state(session, workflow).enabled

    def pause(
        self,
        session: Session,
        *,
        workflow: str,
        actor: str,
        reason: str | None = None,
        via: str = "command",
        incident_id: int | None = None,
        groups: GroupMembers = None,
        trusted: bool = False,
    ) -> Flip:
        """Switch the workflow to humans (responders only, or the bot's own P1 rule)."""
        return self._flip(
            session,
            workflow=workflow,
            enabled=False,
            actor=actor,
            reason=reason,
            via=via,
            incident_id=incident_id,
            groups=groups,
            trusted=trusted,
        )

    def resume(
        self,
        session: Session,
        *,
        workflow: str,
        actor: str,
        reason: str | None = None,
        via: str = "command",
        incident_id: int | None = None,
        groups: GroupMembers = None,
    ) -> Flip:
        """Let the workflow run again (responders only)."""
        return self._flip(
            session,
            workflow=workflow,
            enabled=True,
            actor=actor,
            reason=reason,
            via=via,
            incident_id=incident_id,
            groups=groups,
            trusted=False,
        )

    def _locked_row(self, session: Session, workflow: str) -> WorkflowSwitchRow:
        row = session.get(WorkflowSwitchRow, workflow, with_for_update=True)
        if row is not None:
            if row.version == 0:
                # never flipped: the policy file's current default holds
                row.enabled = self._default(workflow).enabled
            return row
        default = self._default(workflow)
        fresh = WorkflowSwitchRow(
            workflow=workflow,
            enabled=default.enabled,
            changed_by="policy",
            changed_at=self._clock(),
            version=0,
        )
        try:
            with session.begin_nested():
                session.add(fresh)
        except IntegrityError:
            # another flip created it between our read and our insert: take its lock
            row = session.get(WorkflowSwitchRow, workflow, with_for_update=True)
            assert row is not None
            return row
        return fresh

    def _flip(
        self,
        session: Session,
        *,
        workflow: str,
        enabled: bool,
        actor: str,
        reason: str | None,
        via: str,
        incident_id: int | None,
        groups: GroupMembers,
        trusted: bool,
    ) -> Flip:
        self._check(workflow)
        verb = "pause" if not enabled else "resume"
        if not trusted and not has_role(self._policy, "responders", actor, groups):
            raise NotAResponder(user=actor, action=f"{verb} a workflow")
        now = self._clock()
        row = self._locked_row(session, workflow)
        if row.enabled == enabled:
            # already so (by a person or by the policy default): nothing flips, nothing to audit
            return Flip(state=self._from_row(row), changed=False)
        old = row.enabled
        row.enabled = enabled
        row.reason = reason
        row.changed_by = actor
        row.changed_at = now
        row.version += 1
        session.add(row)
        session.add(
            SwitchAuditRow(
                workflow=workflow,
                old_enabled=old,
                new_enabled=enabled,
                actor=actor,
                reason=reason,
                via=via,
                incident_id=incident_id,
                at=now,
            )
        )
        word = "paused (switched to humans)" if not enabled else "resumed"
        who = "automatically" if actor == AUTO_PAUSE else f"by {actor}"
        where = f" from {format_incident_id(incident_id)}" if incident_id is not None else ""
        why = f": {reason}" if reason else ""
        text = (
            f"Kill switch: workflow {workflow!r} {word} {who}{where}{why} "
            f"({'enabled' if old else 'paused'} → {'enabled' if enabled else 'paused'})."
        )
        open_incidents = session.exec(
            select(IncidentRow)
            .where(
                IncidentRow.workflow == workflow,
                IncidentRow.state != IncidentState.RESOLVED.value,
            )
            .order_by(IncidentRow.id)  # type: ignore[arg-type]
        ).all()
        for incident in open_incidents:
            journal.record(
                session, incident, kind=JournalKind.ACTION, text=text, author=actor, now=now
            )
            journal.card_changed(session, incident, now)
        session.flush()
        return Flip(
            state=self._from_row(row),
            changed=True,
            incidents=tuple(i.id for i in open_incidents if i.id is not None),
        )

    def on_incident_event(self, session: Session, event: IncidentEvent) -> None:
        """Pause a workflow configured for it when one of its incidents becomes P1."""
        if isinstance(event, IncidentOpened):
            reached_p1 = event.incident.severity == Severity.P1.value
        elif isinstance(event, SeverityChanged):
            reached_p1 = event.current is Severity.P1 and event.previous is not Severity.P1
        else:
            return
        incident = event.incident
        if not reached_p1 or not self._policy.workflow(incident.workflow).auto_pause_on_p1:
            return
        if incident.workflow not in self.known() or self.is_paused(session, incident.workflow):
            return
        self.pause(
            session,
            workflow=incident.workflow,
            actor=AUTO_PAUSE,
            reason=f"{format_incident_id(incident.id or 0)} is P1 and the workflow is set to "
            "pause on P1",
            via="auto",
            incident_id=incident.id,
            trusted=True,
        )
