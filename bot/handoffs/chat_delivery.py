"""Outbox handlers on the chat lane: the review card of a handoff and lines in its thread."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.delivery.worker import Attempt
from bot.domain.redaction import SafeText
from bot.handoffs.domain import HandoffView, format_handoff_id
from bot.integrations.ports import ChatNotifier, GiveUp, RetryLater, post_once
from bot.rendering.handoffs import handoff_card_blocks, handoff_card_text, thread_text
from storage.db import readonly, session_scope
from storage.handoffs import handoff_view
from storage.models import HandoffRow

__all__ = ["HandoffChatDelivery"]


class HandoffChatDelivery:
    """Render the card from current state at delivery time, so an update shows the latest."""

    def __init__(
        self,
        *,
        engine: Engine,
        chat: ChatNotifier,
        safe: SafeText,
        channel: str,
        slack: bool,
        clock: Callable[[], datetime],
        workflow_known: Callable[[str], bool],
    ) -> None:
        self._engine = engine
        self._chat = chat
        self._safe = safe
        self._channel = channel
        self._slack = slack
        self._clock = clock
        self._workflow_known = workflow_known

    def _view(self, handoff_id: int) -> HandoffView:
        with Session(readonly(self._engine)) as session:
            row = session.get(HandoffRow, handoff_id)
            if row is None:
                raise GiveUp(f"handoff {handoff_id} does not exist")
            return handoff_view(row, workflow_known=self._workflow_known(row.workflow))

    @staticmethod
    def _id(attempt: Attempt) -> int:
        return int(attempt.payload["handoff_id"])

    def card(self, attempt: Attempt) -> dict[str, Any]:
        """Post the review card once, or update it in place."""
        view = self._view(self._id(attempt))
        now = self._clock()
        text = handoff_card_text(view, self._safe, now, slack=self._slack)
        blocks = handoff_card_blocks(view, self._safe, now) if self._slack else None
        channel = view.slack_channel or self._channel
        if view.slack_ts is not None:
            self._chat.update(channel=channel, ts=view.slack_ts, text=text, blocks=blocks)
            return {"updated": view.slack_ts}
        posted = post_once(
            self._chat,
            channel=channel,
            text=text,
            blocks=blocks,
            key=f"handoff-card:{view.id}",
            uncertain=attempt.uncertain,
            sent=attempt.sent,
        )
        channel, ts = posted.channel, posted.ts
        with session_scope(self._engine) as session:
            session.execute(
                sa.update(HandoffRow)
                .where(sa.column("id") == view.id)
                .values(slack_channel=channel, slack_ts=ts)
            )
        return {"channel": channel, "ts": ts}

    def thread(self, attempt: Attempt) -> dict[str, Any]:
        """Post one line in the card's thread."""
        handoff_id = self._id(attempt)
        view = self._view(handoff_id)
        if view.slack_ts is None or view.slack_channel is None:
            # the card's own post (first in this key) gave up: post the thread's parent now
            self.card(attempt)
            view = self._view(handoff_id)
            if view.slack_ts is None or view.slack_channel is None:
                raise RetryLater("the review card is not posted yet", retry_after=1.0)
        line = dict(attempt.payload.get("line") or {})
        text = thread_text(format_handoff_id(handoff_id), line, self._safe, slack=self._slack)
        posted = post_once(
            self._chat,
            channel=view.slack_channel,
            text=text,
            key=attempt.idempotency_key,
            thread_ts=view.slack_ts,
            uncertain=attempt.uncertain,
            sent=attempt.sent,
        )
        return {"ts": posted.ts}
