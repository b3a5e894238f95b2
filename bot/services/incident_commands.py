"""The incident subcommands and card buttons: find the incident, run the use case, say what changed."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.domain.incidents import IncidentState, format_incident_id
from bot.domain.redaction import SafeText
from bot.domain.severity import Severity
from bot.services.errors import DomainError
from bot.services.incidents import IncidentService
from storage.db import readonly, session_scope
from storage.models import IncidentRow

__all__ = ["LIST_LIMIT", "IncidentCommands"]

LIST_LIMIT = 20

Groups = Mapping[str, Collection[str]] | None


class IncidentCommands:
    """Incident reads and writes for the slash command, one transaction each."""

    def __init__(
        self,
        *,
        engine: Engine,
        incidents: IncidentService,
        safe: SafeText,
        after_commit: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._incidents = incidents
        self._safe = safe
        self._after_commit = after_commit

    @property
    def service(self) -> IncidentService:
        return self._incidents

    def write(self, action: Callable[[Session], object]) -> None:
        """Run `action` in one transaction, then wake the delivery lanes."""
        with session_scope(self._engine) as session:
            action(session)
        self._after_commit()

    def declare(
        self,
        *,
        user: str,
        title: str,
        severity: Severity | None,
        workflow: str | None,
        reason: str | None = None,
    ) -> str:
        with session_scope(self._engine) as s:
            row = self._incidents.declare(
                s, title=title, actor=user, severity=severity, workflow=workflow, reason=reason
            )
            public = format_incident_id(row.id or 0)
            workflow = self._safe.slack(row.workflow)
            answer = f"Declared {public} ({row.severity}) in workflow {workflow}."
        self._after_commit()
        return answer

    def incident_id(self, given: int | None, channel: str, *, latest: bool = False) -> int:
        """Return the named incident, else the channel's only open one.

        With `latest` (reports, usually asked for after resolving), a channel with no open
        incident means its most recently resolved one.
        """
        if given is not None:
            return given
        with Session(readonly(self._engine)) as session:
            ids = session.exec(
                select(IncidentRow.id).where(
                    IncidentRow.slack_channel == channel,
                    IncidentRow.state != IncidentState.RESOLVED.value,
                )
            ).all()
            if not ids and latest:
                last = session.exec(
                    select(IncidentRow.id)
                    .where(IncidentRow.slack_channel == channel)
                    .order_by(IncidentRow.resolved_at.desc())  # type: ignore[union-attr]
                    .limit(1)
                ).first()
                if last is not None:
                    return last
        if len(ids) == 1 and ids[0] is not None:
            return ids[0]
        if not ids:
            raise DomainError("This channel has no open incident; name one, e.g. INC-7.")
        raise DomainError(
            "This channel has several open incidents ("
            + ", ".join(format_incident_id(i) for i in sorted(i for i in ids if i is not None))
            + "); name one."
        )

    def workflow_of(self, incident_id: int) -> str:
        """Return the workflow of an incident (its card's pause and resume buttons act on it)."""
        with Session(readonly(self._engine)) as session:
            row = session.get(IncidentRow, incident_id)
        if row is None:
            raise DomainError(f"There is no incident {format_incident_id(incident_id)}.")
        return row.workflow

    def severity_from_card(
        self,
        session: Session,
        action: str,
        incident_id: int,
        user: str,
        value: str | None,
        groups: Groups,
    ) -> None:
        row = session.get(IncidentRow, incident_id)
        if row is None:
            raise DomainError(f"There is no incident {format_incident_id(incident_id)}.")
        if action == "escalate":
            target = {"P3": Severity.P2, "P2": Severity.P1}.get(row.severity)
            if target is None:
                raise DomainError(f"{format_incident_id(incident_id)} is already P1.")
            reason = "escalated from the incident card"
        else:
            target = Severity(value or row.severity)
            reason = "set from the incident card"
        self._incidents.set_severity(
            session,
            incident_id=incident_id,
            actor=user,
            severity=target,
            reason=reason,
            groups=groups,
        )

    def list_open(self) -> str:
        with Session(readonly(self._engine)) as session:
            rows = session.exec(
                select(IncidentRow)
                .where(IncidentRow.state != IncidentState.RESOLVED.value)
                .order_by(IncidentRow.severity, IncidentRow.id)  # type: ignore[arg-type]
                .limit(LIST_LIMIT + 1)
            ).all()
            total = int(
                session.execute(
                    sa.select(sa.func.count())
                    .select_from(IncidentRow)
                    .where(sa.column("state") != IncidentState.RESOLVED.value)
                ).scalar_one()
            )
        if not rows:
            return "No open incidents."
        lines = [
            f"• {format_incident_id(r.id or 0)} [{r.severity}] {self._safe.slack(r.title)} — "
            f"{r.state}, {self._safe.slack(r.workflow)}"
            for r in rows[:LIST_LIMIT]
        ]
        if total > LIST_LIMIT:
            lines.append(f"… and {total - LIST_LIMIT} more.")
        return f"{total} open incident(s):\n" + "\n".join(lines)

    def status(self, incident_id: int) -> str:
        with Session(readonly(self._engine)) as session:
            row = session.get(IncidentRow, incident_id)
        if row is None:
            return f"There is no incident {format_incident_id(incident_id)}."
        reasons = "; ".join(self._safe.slack(r["text"]) for r in row.severity_reasons)
        commander = f"<@{row.commander}>" if row.commander else "none yet"
        return (
            f"{format_incident_id(incident_id)} [{row.severity}] {self._safe.slack(row.title)}\n"
            f"state {row.state} · workflow {self._safe.slack(row.workflow)} · "
            f"commander {commander} · ticket {self._safe.slack(row.jira_key) or 'pending'}\n"
            f"why {row.severity}: {reasons}"
        )

    def thread_message(self, event: Mapping[str, object]) -> None:
        """Capture replies, edits and deletions in incident threads; ignore everything else."""
        channel = str(event.get("channel", ""))
        subtype = event.get("subtype")
        svc = self._incidents
        if subtype == "message_changed":
            message = event.get("message")
            if isinstance(message, dict) and message.get("thread_ts") and not message.get("bot_id"):
                ts, text = str(message.get("ts", "")), str(message.get("text", ""))
                self.write(lambda s: svc.capture_edit(s, channel=channel, ts=ts, text=text))
            return
        if subtype == "message_deleted":
            ts = str(event.get("deleted_ts", ""))
            self.write(lambda s: svc.capture_delete(s, channel=channel, ts=ts))
            return
        # the bot's own posts and other bots' are already in the journal or not a person's words
        if subtype is not None or event.get("bot_id") or not event.get("thread_ts"):
            return
        thread_ts, ts = str(event["thread_ts"]), str(event.get("ts", ""))
        if ts == thread_ts:
            return
        user, text = str(event.get("user", "")), str(event.get("text", ""))
        self.write(
            lambda s: svc.capture_reply(
                s, channel=channel, thread_ts=thread_ts, ts=ts, user=user, text=text
            )
        )
