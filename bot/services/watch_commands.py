"""`/ai-incident watch`: the watched workflows' figures now, and a workflow's 7-day chart.

The summary is read in one read-only session and answered at once. The chart is drawn and
uploaded by the chat lane (`WATCH_CHART` rows), so the command never waits for Slack.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy
from bot.domain.redaction import SafeText
from bot.domain.watch.figures import HourPoint, WatchFigures
from bot.rendering.watch_blocks import watch_blocks, watch_text
from bot.services.errors import UnknownWorkflow
from storage.db import readonly, session_scope
from storage.outbox import enqueue

__all__ = [
    "WATCH_CHART",
    "Answer",
    "SeenOnly",
    "WatchCommands",
    "WatchReads",
    "unknown_workflow",
    "workflow_named",
]

WATCH_CHART = "chat.watch_chart"
_KNOWN_SHOWN = 20  # workflow names listed when a name is not known


@dataclass(frozen=True)
class Answer:
    """An ephemeral answer: its text, and Block Kit blocks where Slack shows more than text."""

    text: str
    blocks: list[dict[str, Any]] | None = field(default=None)


class WatchReads(Protocol):
    """What the command reads of the watched history, in the caller's session."""

    def workflows(self, session: Session) -> list[str]:
        """Return the workflows of the policy and those with recent history."""
        ...

    def resolve(self, session: Session, workflow: str) -> str:
        """Return the workflow a name or alias means; raise UnknownWorkflow if none."""
        ...

    def figures(self, session: Session, workflow: str | None = None) -> Sequence[WatchFigures]: ...

    def week(self, session: Session, workflow: str) -> Sequence[HourPoint]: ...


class SeenOnly:
    """The watch reads the delivery lanes make: nothing, not a refusal, for an unknown workflow.

    A card whose incident names a workflow watch has never heard of is posted without figures,
    and a chart row whose workflow has since gone is done with, instead of retried for hours.
    """

    def __init__(self, watch: WatchReads) -> None:
        self._watch = watch

    def figures(self, session: Session, workflow: str | None = None) -> list[WatchFigures]:
        try:
            return list(self._watch.figures(session, workflow))
        except UnknownWorkflow:
            return []

    def week(self, session: Session, workflow: str) -> list[HourPoint]:
        try:
            return list(self._watch.week(session, workflow))
        except UnknownWorkflow:
            return []


def workflow_named(watch: WatchReads, session: Session, given: str) -> str | None:
    """Return the watched workflow `given` names (by name, alias or in another case)."""
    try:
        return watch.resolve(session, given)
    except UnknownWorkflow:
        folded = given.casefold()
        return next((w for w in watch.workflows(session) if w.casefold() == folded), None)


def unknown_workflow(
    watch: WatchReads, session: Session, given: str, slack: Callable[[str], str]
) -> str:
    """Say that no watched workflow is named `given`, and which ones are."""
    known = sorted(watch.workflows(session))
    if not known:
        return f"No workflow named {slack(given)} has been seen; none has been yet."
    listed = ", ".join(slack(k) for k in known[:_KNOWN_SHOWN])
    more = f" and {len(known) - _KNOWN_SHOWN} more" if len(known) > _KNOWN_SHOWN else ""
    return f"No workflow named {slack(given)} has been seen; known: {listed}{more}."


class WatchCommands:
    """Answer `watch` from current figures; queue `watch <workflow> chart` for the chat lane."""

    def __init__(
        self,
        *,
        engine: Engine,
        policy: Policy,
        watch: WatchReads,
        safe: SafeText,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._watch = watch
        self._safe = safe
        self._clock = clock
        self._after_commit = after_commit
        self._zone = ZoneInfo(policy.timezone)

    def summary(self, *, workflow: str | None) -> Answer:
        """Return the figures of every watched workflow, or of one."""
        with Session(readonly(self._engine)) as session:
            if workflow is None:
                figures = list(self._watch.figures(session))
                if not figures:
                    return Answer(
                        "No workflow has reported runs yet; send runs or OTLP metrics to watch one."
                    )
            else:
                name = self._name(session, workflow)
                if name is None:
                    return Answer(self._unknown(session, workflow))
                figures = list(self._watch.figures(session, name))
        text = watch_text(figures, self._safe.slack, self._zone)
        return Answer(text, watch_blocks(figures, self._safe.slack, self._zone))

    def chart(self, *, workflow: str, channel: str, user: str) -> str:
        """Queue the workflow's 7-day chart for the channel; say so, or why there is none."""
        with Session(readonly(self._engine)) as session:
            name = self._name(session, workflow)
            if name is None:
                return self._unknown(session, workflow)
            if not any(point.runs for point in self._watch.week(session, name)):
                return f"{self._safe.slack(name)} has no runs in the last 7 days: no chart to draw."
        with session_scope(self._engine) as session:
            enqueue(
                session,
                kind=WATCH_CHART,
                idempotency_key=f"watch-chart:{uuid.uuid4().hex}",
                ordering_key=f"watch-chart:{channel}",
                # asked again before it is drawn, the chart is drawn once
                coalesce_key=f"watch-chart:{channel}:{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}",
                payload={"workflow": name, "channel": channel, "user": user},
                now=self._clock(),
            )
        self._after_commit()
        return f"The 7-day chart of {self._safe.slack(name)} is coming to this channel."

    def _name(self, session: Session, given: str) -> str | None:
        return workflow_named(self._watch, session, given)

    def _unknown(self, session: Session, given: str) -> str:
        return unknown_workflow(self._watch, session, given, self._safe.slack)
