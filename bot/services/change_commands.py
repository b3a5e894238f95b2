"""`/ai-incident changes [workflow]`: the change log of models and prompt versions, newest first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy
from bot.domain.redaction import SafeText
from bot.domain.watch.history import Change
from bot.rendering.changes import changes_blocks, changes_text
from bot.services.watch_commands import Answer, WatchReads, unknown_workflow, workflow_named
from storage import watch
from storage.db import readonly

__all__ = ["CHANGES_SHOWN", "ChangeCommands"]

# how far back the command looks
CHANGES_SHOWN = timedelta(days=30)


class ChangeCommands:
    """Answer `changes` from the change log, in one read-only session."""

    def __init__(
        self,
        *,
        engine: Engine,
        policy: Policy,
        watch: WatchReads,
        safe: SafeText,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._watch = watch
        self._safe = safe
        self._clock = clock
        self._zone = ZoneInfo(policy.timezone)

    def read(self, *, workflow: str | None, since: datetime) -> list[Change] | str:
        """Return the changes since `since` (of one workflow, or all), or why there are none
        to show: the sentence for a name no workflow has."""
        with Session(readonly(self._engine)) as session:
            if workflow is None:
                return watch.changes(session, since=since)
            name = self._name(session, workflow)
            if name is None:
                return self._unknown(session, workflow)
            return watch.changes(session, workflows=[name], since=since)

    def list(self, *, workflow: str | None) -> Answer:
        """Return the last 30 days' changes, newest first, of every workflow or of one."""
        found = self.read(workflow=workflow, since=self._clock() - CHANGES_SHOWN)
        if isinstance(found, str):
            return Answer(found)
        slack = self._safe.slack
        whose = f" of {slack(workflow)}" if workflow is not None else ""
        if not found:
            return Answer(f"No model or prompt version{whose} changed in the last 30 days.")
        title = f"Changes{whose} in the last 30 days"
        lines = changes_text(found, slack, self._zone, workflow=workflow is None)
        text = "\n".join([f"{title}:", *lines])
        blocks = changes_blocks(found, slack, self._zone, title=title, workflow=workflow is None)
        return Answer(text, blocks)

    def _name(self, session: Session, given: str) -> str | None:
        return workflow_named(self._watch, session, given)

    def _unknown(self, session: Session, given: str) -> str:
        return unknown_workflow(self._watch, session, given, self._safe.slack)
