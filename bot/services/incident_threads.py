"""The thread is the journal: people's replies in an incident thread become journal entries."""

from __future__ import annotations

from sqlmodel import Session

from bot.domain.incidents import journal_kind_of
from bot.services.incident_outcomes import Lifecycle
from storage import incidents as repository
from storage.models import JournalRow

__all__ = ["ThreadCapture"]


class ThreadCapture:
    """Capture replies, edits and deletions of thread messages, once per message."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._life = lifecycle

    def capture_reply(
        self, session: Session, *, channel: str, thread_ts: str, ts: str, user: str, text: str
    ) -> int | None:
        """Store a person's reply in an incident thread as a journal entry; once per message."""
        incident = repository.by_thread(session, channel, thread_ts)
        if incident is None or incident.id is None:
            return None
        existing = repository.reply_id(session, incident.id, ts)
        if existing is not None:
            return existing
        kind, text = journal_kind_of(text)
        entry = JournalRow(
            incident_id=incident.id,
            kind=kind.value,
            text=text,
            author=user,
            via="slack",
            created_at=self._life.clock(),
            slack_ts=ts,
        )
        return repository.add_reply(session, entry)

    def capture_edit(self, session: Session, *, channel: str, ts: str, text: str) -> bool:
        """Reflect an edited thread reply, keeping the previous text."""
        entry = repository.captured(session, channel, ts)
        if entry is None or entry.text == text:
            return False
        entry.previous_text = entry.text
        entry.text = text
        entry.edited_at = self._life.clock()
        session.add(entry)
        return True

    def capture_delete(self, session: Session, *, channel: str, ts: str) -> bool:
        """Mark a deleted thread reply as deleted; the entry itself is kept."""
        entry = repository.captured(session, channel, ts)
        if entry is None or entry.deleted_at is not None:
            return False
        entry.deleted_at = self._life.clock()
        session.add(entry)
        return True
