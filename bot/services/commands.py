"""The `/ai-incident` flow: parse the text, run the use case, answer in one sentence or a list."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain import commands as cmd
from bot.domain.incidents import IncidentState, format_incident_id
from bot.domain.redaction import SafeText
from bot.domain.severity import Severity
from bot.handoffs.runner import HandoffRunner
from bot.paging.commands import PagingCommands
from bot.rendering.reports import digest_text
from bot.services.digest import DigestService
from bot.services.errors import DomainError
from bot.services.incidents import IncidentService
from bot.services.killswitch import Flip, KillSwitchService
from storage.db import readonly, session_scope
from storage.models import IncidentRow

__all__ = ["DECLARE_FALLBACK", "CommandRunner", "Invocation"]

log = logging.getLogger(__name__)

LIST_LIMIT = 20
DECLARE_FALLBACK = f"The declare form could not be opened; type `{cmd.USAGE['declare']}` instead."


@dataclass(frozen=True)
class Invocation:
    """Who typed what, where."""

    text: str
    user: str
    channel: str
    groups: Mapping[str, Collection[str]] | None = None


class CommandRunner:
    """Turns one slash command into one answer; never raises to the transport."""

    def __init__(
        self,
        *,
        engine: Engine,
        policy: Policy,
        incidents: IncidentService,
        safe: SafeText,
        after_commit: Callable[[], None] = lambda: None,
        group_members: Callable[[Collection[str]], Mapping[str, Collection[str]]] | None = None,
        killswitch: KillSwitchService | None = None,
        digests: DigestService | None = None,
        paging: PagingCommands | None = None,
        handoffs: HandoffRunner | None = None,
    ) -> None:
        self._handoffs = handoffs
        self._paging = paging
        self._digests = digests or DigestService(policy=policy, clock=incidents.clock)
        self._group_members = group_members
        self._killswitch = killswitch or KillSwitchService(policy=policy, clock=incidents.clock)
        self._engine = engine
        self._policy = policy
        self._incidents = incidents
        self._safe = safe
        self._after_commit = after_commit

    def run(self, inv: Invocation) -> str:
        """Return the ephemeral answer to an invocation."""
        try:
            command = cmd.parse_command(inv.text, known_workflows=self._policy.workflows)
        except cmd.CommandError as exc:
            return f"{exc.message}\nUsage: `{exc.usage}`"
        try:
            return self._dispatch(command, inv)
        except DomainError as exc:
            return str(exc)
        except OperationalError:
            log.exception("database unavailable for /ai-incident %s", command.subcommand)
            return "The incident database is unavailable right now; try again in a minute."

    @property
    def workflows(self) -> list[str]:
        """The policy's workflow names, as configured (the declare form offers them)."""
        return list(self._policy.workflows)

    def declare_from_modal(
        self,
        *,
        user: str,
        title: str,
        severity: Severity | None = None,
        workflow: str | None = None,
        reason: str | None = None,
    ) -> str:
        """Declare from the submitted form; return the one-sentence answer for the submitter."""
        title = title.strip()
        if not title:
            return "An incident needs a title."
        try:
            return self._declare(
                user=user,
                title=title,
                severity=severity,
                workflow=workflow or None,
                reason=(reason or "").strip() or None,
            )
        except DomainError as exc:
            return str(exc)
        except OperationalError:
            log.exception("database unavailable for the declare form")
            return "The incident database is unavailable right now; try again in a minute."

    def _declare(
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

    def _incident_id(self, given: int | None, channel: str, *, latest: bool = False) -> int:
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

    def _dispatch(self, command: cmd.Command, inv: Invocation) -> str:
        svc = self._incidents
        user = inv.user
        match command:
            case cmd.Help(unknown=unknown):
                prefix = f"I don't know `{self._safe.slack(unknown)}`.\n" if unknown else ""
                return prefix + cmd.HELP_TEXT
            case cmd.ListIncidents():
                return self._list()
            case cmd.Status(incident=given):
                return self._status(self._incident_id(given, inv.channel))
            case cmd.Declare(title=title, severity=severity, workflow=workflow):
                return self._declare(user=user, title=title, severity=severity, workflow=workflow)
            case cmd.DeclareModal():
                # reached only when the form could not be opened (or outside Slack)
                return DECLARE_FALLBACK
            case cmd.Ack(incident=given):
                inc = self._incident_id(given, inv.channel)
                self._write(lambda s: svc.acknowledge(s, incident_id=inc, actor=user))
                return f"You acknowledged {format_incident_id(inc)} and are its commander."
            case cmd.Mitigate(incident=given):
                inc = self._incident_id(given, inv.channel)
                self._write(lambda s: svc.mitigate(s, incident_id=inc, actor=user))
                return f"{format_incident_id(inc)} is mitigated."
            case cmd.Resolve(incident=given, summary=summary):
                inc = self._incident_id(given, inv.channel)
                self._write(
                    lambda s: svc.resolve(
                        s,
                        incident_id=inc,
                        actor=user,
                        summary=summary,
                        groups=self._groups(inv.groups),
                    )
                )
                return f"{format_incident_id(inc)} is resolved."
            case cmd.SetSeverity(incident=given, severity=severity, reason=reason):
                inc = self._incident_id(given, inv.channel)
                self._write(
                    lambda s: svc.set_severity(
                        s,
                        incident_id=inc,
                        actor=user,
                        severity=severity,
                        reason=reason,
                        groups=self._groups(inv.groups),
                    )
                )
                return f"{format_incident_id(inc)} is now {severity.value}."
            case cmd.Note(incident=given, text=text):
                inc = self._incident_id(given, inv.channel)
                self._write(lambda s: svc.note(s, incident_id=inc, actor=user, text=text))
                return f"Noted in the {format_incident_id(inc)} journal."
            case cmd.RootCause(incident=given, text=text):
                inc = self._incident_id(given, inv.channel)
                self._write(
                    lambda s: svc.record_root_cause(s, incident_id=inc, actor=user, text=text)
                )
                return f"Root cause of {format_incident_id(inc)} recorded."
            case cmd.Digest():
                with Session(readonly(self._engine)) as session:
                    digest = self._digests.build(session, self._digests.current_week())
                return "Preview (the week so far):\n" + digest_text(
                    digest, self._safe.slack, self._digests.zone
                )
            case cmd.Timeline(incident=given):
                inc = self._incident_id(given, inv.channel, latest=True)
                self._write(lambda s: svc.report(s, incident_id=inc, actor=user, name="timeline"))
                return f"The timeline of {format_incident_id(inc)} is being posted in its thread."
            case cmd.Postmortem(incident=given):
                inc = self._incident_id(given, inv.channel, latest=True)
                self._write(lambda s: svc.report(s, incident_id=inc, actor=user, name="postmortem"))
                return (
                    f"The postmortem draft of {format_incident_id(inc)} is being posted in its "
                    "thread; the parts marked TO FILL IN need a human."
                )
            case cmd.Pause(workflow=to_pause, reason=why):
                flip = self._flip(
                    lambda s: self._killswitch.pause(
                        s,
                        workflow=to_pause,
                        actor=user,
                        reason=why,
                        groups=self._groups(inv.groups),
                    )
                )
                return self._flipped(flip)
            case cmd.Resume(workflow=to_resume):
                flip = self._flip(
                    lambda s: self._killswitch.resume(
                        s, workflow=to_resume, actor=user, groups=self._groups(inv.groups)
                    )
                )
                return self._flipped(flip)
            case cmd.OnCall() if self._paging is not None:
                return self._paging.oncall()
            case cmd.OnCallOverride() if self._paging is not None:
                return self._paging.override(command, user=user)
            case cmd.Page(incident=given) if self._paging is not None:
                inc = self._incident_id(given, inv.channel)
                return self._paging.page(command, incident_id=inc, user=user)
            case cmd.Handoffs() if self._handoffs is not None:
                return self._handoffs.queue()
            case cmd.Claim(handoff=number) if self._handoffs is not None:
                return self._handoffs.claim(handoff_id=number, user=user).text
            case _:
                # reached only by a runner built without the service a subcommand needs
                return f"`{command.subcommand}` is not available in this set-up."

    # -- card buttons -----------------------------------------------------------------------

    def press(
        self,
        *,
        action: str,
        incident_id: int,
        user: str,
        value: str | None = None,
        groups: Mapping[str, Collection[str]] | None = None,
    ) -> str | None:
        """Run a card button or the severity select; return a sentence only for a refusal."""
        svc = self._incidents
        groups = self._groups(groups)
        try:
            match action:
                case "ack":
                    self._write(lambda s: svc.acknowledge(s, incident_id=incident_id, actor=user))
                case "resolve":
                    self._write(
                        lambda s: svc.resolve(
                            s, incident_id=incident_id, actor=user, summary=None, groups=groups
                        )
                    )
                case "escalate" | "severity":
                    self._write(
                        lambda s: self._severity_from_card(
                            s, action, incident_id, user, value, groups
                        )
                    )
                case "pause" | "resume":
                    return self._switch_from_card(action, incident_id, user, groups)
                case _:
                    return f"The card button `{action}` is unknown."
        except DomainError as exc:
            return str(exc)
        return None

    def _severity_from_card(
        self,
        session: Session,
        action: str,
        incident_id: int,
        user: str,
        value: str | None,
        groups: Mapping[str, Collection[str]] | None,
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

    def _switch_from_card(
        self,
        action: str,
        incident_id: int,
        user: str,
        groups: Mapping[str, Collection[str]] | None,
    ) -> str | None:
        """Pause or resume the workflow of the card's incident; answer only when nothing flipped."""
        with Session(readonly(self._engine)) as session:
            row = session.get(IncidentRow, incident_id)
        if row is None:
            raise DomainError(f"There is no incident {format_incident_id(incident_id)}.")
        workflow = row.workflow
        public = format_incident_id(incident_id)
        switch = self._killswitch
        if action == "pause":
            flip = self._flip(
                lambda s: switch.pause(
                    s,
                    workflow=workflow,
                    actor=user,
                    reason=f"paused from the {public} card",
                    via="button",
                    incident_id=incident_id,
                    groups=groups,
                )
            )
        else:
            flip = self._flip(
                lambda s: switch.resume(
                    s,
                    workflow=workflow,
                    actor=user,
                    reason=f"resumed from the {public} card",
                    via="button",
                    incident_id=incident_id,
                    groups=groups,
                )
            )
        # a flip shows in the thread and on the card; only "nothing changed" needs saying
        return None if flip.changed else self._flipped(flip)

    def _flip(self, action: Callable[[Session], Flip]) -> Flip:
        with session_scope(self._engine) as session:
            flip = action(session)
        self._after_commit()
        return flip

    def _flipped(self, flip: Flip) -> str:
        name = self._safe.slack(flip.state.workflow)
        if not flip.changed:
            return f"Workflow {name} is already {flip.state.word}; nothing changed."
        where = (
            " Journalled in " + ", ".join(format_incident_id(i) for i in flip.incidents) + "."
            if flip.incidents
            else ""
        )
        if flip.state.enabled:
            return f"Workflow {name} is running again: its flag reads enabled.{where}"
        return (
            f"Workflow {name} is paused: agents reading `workflow.{name}.enabled` now get false "
            f"and its handoffs all go to a human.{where}"
        )

    # -- the thread is the journal ----------------------------------------------------------

    def thread_message(self, event: Mapping[str, object]) -> None:
        """Capture replies, edits and deletions in incident threads; ignore everything else."""
        channel = str(event.get("channel", ""))
        subtype = event.get("subtype")
        svc = self._incidents
        if subtype == "message_changed":
            message = event.get("message")
            if isinstance(message, dict) and message.get("thread_ts") and not message.get("bot_id"):
                ts, text = str(message.get("ts", "")), str(message.get("text", ""))
                self._write(lambda s: svc.capture_edit(s, channel=channel, ts=ts, text=text))
            return
        if subtype == "message_deleted":
            ts = str(event.get("deleted_ts", ""))
            self._write(lambda s: svc.capture_delete(s, channel=channel, ts=ts))
            return
        # the bot's own posts and other bots' are already in the journal or not a person's words
        if subtype is not None or event.get("bot_id") or not event.get("thread_ts"):
            return
        thread_ts, ts = str(event["thread_ts"]), str(event.get("ts", ""))
        if ts == thread_ts:
            return
        user, text = str(event.get("user", "")), str(event.get("text", ""))
        self._write(
            lambda s: svc.capture_reply(
                s, channel=channel, thread_ts=thread_ts, ts=ts, user=user, text=text
            )
        )

    def _groups(
        self, given: Mapping[str, Collection[str]] | None
    ) -> Mapping[str, Collection[str]] | None:
        """Return the members of the Slack user groups listed under responders."""
        if given is not None or self._group_members is None:
            return given
        listed = [
            m.removeprefix("group:")
            for m in self._policy.roles.responders
            if m.startswith("group:")
        ]
        return self._group_members(listed) if listed else None

    def _write(self, action: Callable[[Session], object]) -> None:
        with session_scope(self._engine) as session:
            action(session)
        self._after_commit()

    def _list(self) -> str:
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

    def _status(self, incident_id: int) -> str:
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
