"""Outbox handlers that post incident cards and journal lines to chat."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.delivery.worker import Attempt
from bot.domain.redaction import SafeText
from bot.domain.views import JournalView
from bot.domain.watch.figures import WatchFigures
from bot.integrations.ports import ChatNotifier, GiveUp, RetryLater, post_once
from bot.rendering.cards import card_blocks, card_text, journal_text
from bot.rendering.reports import Section, postmortem_sections, render_slack, timeline_lines
from storage.db import readonly, session_scope
from storage.models import IncidentRow, JournalRow
from storage.repositories import incident_view, journal_views

__all__ = ["ChatDelivery", "WatchedFigures"]

log = logging.getLogger(__name__)

MAX_LINES_PER_POST = 40
MAX_CHARS_PER_POST = 12_000


class WatchedFigures(Protocol):
    """What the card asks of the watch use case: a workflow's figures, empty without history."""

    def figures(self, session: Session, workflow: str | None = None) -> Sequence[WatchFigures]: ...


class ChatDelivery:
    """Render from current state at delivery time, so a debounced update shows the latest."""

    def __init__(
        self,
        *,
        engine: Engine,
        chat: ChatNotifier,
        safe: SafeText,
        default_channel: str,
        slack: bool,
        clock: Callable[[], datetime],
        paused: Callable[[Session, str], bool] | None = None,
        tickets: bool = True,
        on_first_post: Callable[[Session, IncidentRow, datetime], None] | None = None,
        watched: WatchedFigures | None = None,
    ) -> None:
        """`on_first_post` runs in the transaction that records the card's first post.

        `watched` gives the card its workflow's last-hour figures.
        """
        self._paused = paused
        self._watched = watched
        self._tickets = tickets
        self._on_first_post = on_first_post
        self._engine = engine
        self._chat = chat
        self._safe = safe
        self._default_channel = default_channel
        self._slack = slack
        self._clock = clock

    def card(self, attempt: Attempt) -> dict[str, Any]:
        """Post the card once, or update it in place."""
        assert attempt.incident_id is not None
        with Session(readonly(self._engine)) as session:
            view = incident_view(
                session, attempt.incident_id, with_journal=False, with_alerts=False
            )
            if view is not None and self._paused is not None:
                view = replace(view, workflow_paused=self._paused(session, view.workflow))
            last_hour = self._last_hour(session, view.workflow) if view is not None else None
        if view is None:
            raise GiveUp(f"incident {attempt.incident_id} does not exist")
        text = card_text(
            view, self._safe, tickets=self._tickets, slack=self._slack, last_hour=last_hour
        )
        blocks = (
            card_blocks(view, self._safe, tickets=self._tickets, last_hour=last_hour)
            if self._slack
            else None
        )
        channel = view.slack_channel or self._default_channel
        if view.slack_ts is not None:
            self._chat.update(channel=channel, ts=view.slack_ts, text=text, blocks=blocks)
            return {"updated": view.slack_ts}
        posted = post_once(
            self._chat,
            channel=channel,
            text=text,
            blocks=blocks,
            key=f"card:{view.id}",
            uncertain=attempt.uncertain,
            sent=attempt.sent,
        )
        channel, ts = posted.channel, posted.ts
        with session_scope(self._engine) as session:
            row = session.get(IncidentRow, view.id, with_for_update=True)
            assert row is not None
            row.slack_channel = channel
            row.slack_ts = ts
            session.add(row)
            if self._on_first_post is not None:
                self._on_first_post(session, row, self._clock())
        return {"channel": channel, "ts": ts}

    def _last_hour(self, session: Session, workflow: str) -> WatchFigures | None:
        """Return the workflow's figures; a card is posted without them rather than held up."""
        if self._watched is None:
            return None
        try:
            found = self._watched.figures(session, workflow)
        except SQLAlchemyError:
            log.warning("the watched figures of %s could not be read", workflow, exc_info=True)
            return None
        # a workflow with no run yet has no line on its card
        return found[0] if found and found[0].last_run_at is not None else None

    def journal(self, attempt: Attempt) -> dict[str, Any]:
        """Post journal entries as one reply in the incident thread."""
        assert attempt.incident_id is not None
        ids = [int(i) for i in attempt.payload.get("entry_ids", [])]
        with Session(readonly(self._engine)) as session:
            incident = session.get(IncidentRow, attempt.incident_id)
            entries = journal_views(session, attempt.incident_id, ids)
        if incident is None:
            raise GiveUp(f"incident {attempt.incident_id} does not exist")
        if incident.slack_ts is None or incident.slack_channel is None:
            # the card's own post (first in this key) gave up; waiting for it would hold every
            # later row of the incident for ever, so post the thread's parent now
            self.card(attempt)
            with Session(readonly(self._engine)) as session:
                incident = session.get(IncidentRow, attempt.incident_id)
            if incident is None or incident.slack_ts is None or incident.slack_channel is None:
                raise RetryLater("the incident card is not posted yet", retry_after=1.0)
        if not entries:
            return {"skipped": "no entries"}
        channel, thread = incident.slack_channel, incident.slack_ts
        posted: list[str] = []
        for part, chunk in enumerate(_chunks(entries, self._safe, slack=self._slack)):
            # a storm can batch many entries: every one is posted, split over several replies
            key = attempt.idempotency_key if part == 0 else f"{attempt.idempotency_key}#{part}"
            ts = post_once(
                self._chat,
                channel=channel,
                text="\n".join(line for _, line in chunk),
                key=key,
                thread_ts=thread,
                uncertain=attempt.uncertain,
                sent=attempt.sent,
            ).ts
            posted.append(ts)
            with session_scope(self._engine) as session:
                session.execute(
                    sa.update(JournalRow)
                    .where(
                        sa.column("id").in_([entry_id for entry_id, _ in chunk]),
                        sa.column("slack_ts").is_(None),
                    )
                    .values(slack_ts=ts)
                )
        return {"ts": posted[0], "parts": posted, "entries": len(entries)}

    def report(self, attempt: Attempt) -> dict[str, Any]:
        """Post the incident's timeline or postmortem draft in its thread, split if long."""
        assert attempt.incident_id is not None
        name = str(attempt.payload.get("report", ""))
        with Session(readonly(self._engine)) as session:
            view = incident_view(session, attempt.incident_id)
        if view is None:
            raise GiveUp(f"incident {attempt.incident_id} does not exist")
        esc = self._safe.slack if self._slack else self._safe.plain
        if name == "timeline":
            text = render_slack(
                f"Timeline of {view.public_id}", [Section("Timeline", timeline_lines(view, esc))]
            )
        elif name == "postmortem":
            text = render_slack(
                f"Postmortem draft: {view.public_id} {esc(view.title)}",
                postmortem_sections(view, esc),
            )
        else:
            raise GiveUp(f"unknown report {name!r}")
        if view.slack_ts is None or view.slack_channel is None:
            self.card(attempt)
            with Session(readonly(self._engine)) as session:
                incident = session.get(IncidentRow, attempt.incident_id)
            if incident is None or incident.slack_ts is None or incident.slack_channel is None:
                raise RetryLater("the incident card is not posted yet", retry_after=1.0)
            channel, thread = incident.slack_channel, incident.slack_ts
        else:
            channel, thread = view.slack_channel, view.slack_ts
        posted: list[str] = []
        for part, chunk in enumerate(_split(text, MAX_CHARS_PER_POST)):
            key = attempt.idempotency_key if part == 0 else f"{attempt.idempotency_key}#{part}"
            ts = post_once(
                self._chat,
                channel=channel,
                text=chunk,
                key=key,
                thread_ts=thread,
                uncertain=attempt.uncertain,
                sent=attempt.sent,
            ).ts
            posted.append(ts)
        return {"report": name, "parts": posted}


def _split(text: str, limit: int) -> list[str]:
    """Split text on line breaks into parts of at most `limit` characters."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        line = line[:limit]
        if current and size + len(line) + 1 > limit:
            parts.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        parts.append("\n".join(current))
    return parts


def _chunks(
    entries: list[JournalView], safe: SafeText, *, slack: bool
) -> list[list[tuple[int, str]]]:
    """Split journal lines into replies of at most MAX_LINES_PER_POST lines and MAX_CHARS."""
    chunks: list[list[tuple[int, str]]] = [[]]
    size = 0
    for entry in entries:
        line = journal_text(entry, safe, slack=slack)[:MAX_CHARS_PER_POST]
        if chunks[-1] and (
            len(chunks[-1]) >= MAX_LINES_PER_POST or size + len(line) > MAX_CHARS_PER_POST
        ):
            chunks.append([])
            size = 0
        chunks[-1].append((entry.id, line))
        size += len(line) + 1
    return [c for c in chunks if c]
