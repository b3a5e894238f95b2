"""Pausing and resuming a workflow from the slash command or an incident card's buttons."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.domain.incidents import format_incident_id
from bot.domain.redaction import SafeText
from bot.services.killswitch import Flip, KillSwitchService
from storage.db import session_scope

__all__ = ["SwitchCommands"]

Groups = Mapping[str, Collection[str]] | None


class SwitchCommands:
    """Flip a workflow's kill switch in one transaction and say what changed."""

    def __init__(
        self,
        *,
        engine: Engine,
        killswitch: KillSwitchService,
        safe: SafeText,
        after_commit: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._killswitch = killswitch
        self._safe = safe
        self._after_commit = after_commit

    def pause(self, *, workflow: str, user: str, reason: str | None, groups: Groups) -> str:
        switch = self._killswitch
        return self._flipped(
            self._flip(
                lambda s: switch.pause(
                    s, workflow=workflow, actor=user, reason=reason, groups=groups
                )
            )
        )

    def resume(self, *, workflow: str, user: str, groups: Groups) -> str:
        switch = self._killswitch
        return self._flipped(
            self._flip(lambda s: switch.resume(s, workflow=workflow, actor=user, groups=groups))
        )

    def from_card(
        self, action: str, *, workflow: str, incident_id: int, user: str, groups: Groups
    ) -> str | None:
        """Pause or resume the workflow of the card's incident; answer only when nothing flipped."""
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
