"""The `/ai-incident` flow: parse the text, run the use case, answer in one sentence or a list.

`CommandRunner` parses and dispatches; the incident subcommands and card buttons live in
bot.services.incident_commands, pausing and resuming in bot.services.switch_commands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bot.config import Policy
from bot.domain import commands as cmd
from bot.domain.incidents import format_incident_id
from bot.domain.redaction import SafeText
from bot.domain.severity import Severity
from bot.handoffs.runner import HandoffRunner
from bot.paging.commands import PagingCommands
from bot.rendering.reports import digest_text
from bot.services.change_commands import ChangeCommands
from bot.services.digest import DigestService
from bot.services.errors import DomainError
from bot.services.incident_commands import IncidentCommands
from bot.services.incidents import IncidentService
from bot.services.killswitch import KillSwitchService
from bot.services.switch_commands import SwitchCommands
from bot.services.watch_commands import Answer, WatchCommands
from storage.db import readonly

__all__ = ["DECLARE_FALLBACK", "Answer", "CommandRunner", "Invocation"]

log = logging.getLogger(__name__)

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
        killswitch: KillSwitchService,
        digests: DigestService,
        after_commit: Callable[[], None] = lambda: None,
        group_members: Callable[[Collection[str]], Mapping[str, Collection[str]]] | None = None,
        paging: PagingCommands | None = None,
        handoffs: HandoffRunner | None = None,
        watch: WatchCommands | None = None,
        changes: ChangeCommands | None = None,
    ) -> None:
        self._engine = engine
        self._watch = watch
        self._changes = changes
        self._policy = policy
        self._safe = safe
        self._digests = digests
        self._group_members = group_members
        self._paging = paging
        self._handoffs = handoffs
        self._incidents = IncidentCommands(
            engine=engine, incidents=incidents, safe=safe, after_commit=after_commit
        )
        self._switch = SwitchCommands(
            engine=engine, killswitch=killswitch, safe=safe, after_commit=after_commit
        )

    def run(self, inv: Invocation) -> str:
        """Return the ephemeral answer to an invocation, as text."""
        return self.answer(inv).text

    def answer(self, inv: Invocation) -> Answer:
        """Return the ephemeral answer to an invocation, with blocks where it has them."""
        try:
            command = cmd.parse_command(inv.text, known_workflows=self._policy.workflows)
        except cmd.CommandError as exc:
            return Answer(f"{exc.message}\nUsage: `{exc.usage}`")
        try:
            if isinstance(command, cmd.Watch) and self._watch is not None:
                return self._watched(command, inv)
            if isinstance(command, cmd.Changes) and self._changes is not None:
                return self._changes.list(workflow=command.workflow)
            return Answer(self._dispatch(command, inv))
        except DomainError as exc:
            return Answer(str(exc))
        except OperationalError:
            log.exception("database unavailable for /ai-incident %s", command.subcommand)
            return Answer("The incident database is unavailable right now; try again in a minute.")

    def _watched(self, command: cmd.Watch, inv: Invocation) -> Answer:
        assert self._watch is not None
        if command.chart and command.workflow is not None:
            return Answer(
                self._watch.chart(workflow=command.workflow, channel=inv.channel, user=inv.user)
            )
        return self._watch.summary(workflow=command.workflow)

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
            return self._incidents.declare(
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

    def _dispatch(self, command: cmd.Command, inv: Invocation) -> str:
        match command:
            case cmd.Help(unknown=unknown):
                prefix = f"I don't know `{self._safe.slack(unknown)}`.\n" if unknown else ""
                return prefix + cmd.HELP_TEXT
            case cmd.ListIncidents():
                return self._incidents.list_open()
            case cmd.Status(incident=given):
                return self._incidents.status(self._incidents.incident_id(given, inv.channel))
            case cmd.Declare(title=title, severity=severity, workflow=workflow):
                return self._incidents.declare(
                    user=inv.user, title=title, severity=severity, workflow=workflow
                )
            case cmd.DeclareModal():
                # reached only when the form could not be opened (or outside Slack)
                return DECLARE_FALLBACK
            case cmd.Digest():
                with Session(readonly(self._engine)) as session:
                    digest = self._digests.build(session, self._digests.current_week())
                return "Preview (the week so far):\n" + digest_text(
                    digest, self._safe.slack, self._digests.zone
                )
            case cmd.Pause(workflow=to_pause, reason=why):
                return self._switch.pause(
                    workflow=to_pause, user=inv.user, reason=why, groups=self._groups(inv.groups)
                )
            case cmd.Resume(workflow=to_resume):
                return self._switch.resume(
                    workflow=to_resume, user=inv.user, groups=self._groups(inv.groups)
                )
            case cmd.OnCall() if self._paging is not None:
                return self._paging.oncall()
            case cmd.OnCallOverride() if self._paging is not None:
                return self._paging.override(command, user=inv.user)
            case cmd.Page(incident=given) if self._paging is not None:
                inc = self._incidents.incident_id(given, inv.channel)
                return self._paging.page(command, incident_id=inc, user=inv.user)
            case cmd.Handoffs() if self._handoffs is not None:
                return self._handoffs.queue()
            case cmd.Claim(handoff=number) if self._handoffs is not None:
                return self._handoffs.claim(handoff_id=number, user=inv.user).text
            case _:
                return self._incident_change(command, inv)

    def _incident_change(self, command: cmd.Command, inv: Invocation) -> str:
        """Run a subcommand that changes one incident; answer with what changed."""
        svc = self._incidents.service
        write = self._incidents.write
        user = inv.user
        incident_id = self._incidents.incident_id
        match command:
            case cmd.Ack(incident=given):
                inc = incident_id(given, inv.channel)
                write(lambda s: svc.acknowledge(s, incident_id=inc, actor=user))
                return f"You acknowledged {format_incident_id(inc)} and are its commander."
            case cmd.Mitigate(incident=given):
                inc = incident_id(given, inv.channel)
                write(lambda s: svc.mitigate(s, incident_id=inc, actor=user))
                return f"{format_incident_id(inc)} is mitigated."
            case cmd.Resolve(incident=given, summary=summary):
                inc = incident_id(given, inv.channel)
                write(
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
                inc = incident_id(given, inv.channel)
                write(
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
                inc = incident_id(given, inv.channel)
                write(lambda s: svc.note(s, incident_id=inc, actor=user, text=text))
                return f"Noted in the {format_incident_id(inc)} journal."
            case cmd.RootCause(incident=given, text=text):
                inc = incident_id(given, inv.channel)
                write(lambda s: svc.record_root_cause(s, incident_id=inc, actor=user, text=text))
                return f"Root cause of {format_incident_id(inc)} recorded."
            case cmd.Timeline(incident=given):
                inc = incident_id(given, inv.channel, latest=True)
                write(lambda s: svc.report(s, incident_id=inc, actor=user, name="timeline"))
                return f"The timeline of {format_incident_id(inc)} is being posted in its thread."
            case cmd.Postmortem(incident=given):
                inc = incident_id(given, inv.channel, latest=True)
                write(lambda s: svc.report(s, incident_id=inc, actor=user, name="postmortem"))
                return (
                    f"The postmortem draft of {format_incident_id(inc)} is being posted in its "
                    "thread; the parts marked TO FILL IN need a human."
                )
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
        incidents = self._incidents
        svc = incidents.service
        groups = self._groups(groups)
        try:
            match action:
                case "ack":
                    incidents.write(
                        lambda s: svc.acknowledge(s, incident_id=incident_id, actor=user)
                    )
                case "resolve":
                    incidents.write(
                        lambda s: svc.resolve(
                            s, incident_id=incident_id, actor=user, summary=None, groups=groups
                        )
                    )
                case "escalate" | "severity":
                    incidents.write(
                        lambda s: incidents.severity_from_card(
                            s, action, incident_id, user, value, groups
                        )
                    )
                case "pause" | "resume":
                    return self._switch.from_card(
                        action,
                        workflow=incidents.workflow_of(incident_id),
                        incident_id=incident_id,
                        user=user,
                        groups=groups,
                    )
                case _:
                    return f"The card button `{action}` is unknown."
        except DomainError as exc:
            return str(exc)
        return None

    # -- the thread is the journal ----------------------------------------------------------

    def thread_message(self, event: Mapping[str, object]) -> None:
        """Capture replies, edits and deletions in incident threads; ignore everything else."""
        self._incidents.thread_message(event)

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
