"""Without Jira settings: print the tickets that would be filed, as readable text."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from bot.integrations.ports import TicketDraft, TicketRef, TicketUser

__all__ = ["LOCAL_PROJECT", "ConsoleTracker"]

LOCAL_PROJECT = "LOCAL"


class ConsoleTracker:
    """A TicketTracker that writes to a stream; its tickets are named LOCAL-<n>."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._labels: dict[str, str] = {}

    def _print(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def create(self, draft: TicketDraft) -> TicketRef:
        key = f"{LOCAL_PROJECT}-{next(self._numbers)}"
        self._labels[draft.dedup_label] = key
        self._print(
            f"\n=== [jira {draft.project}] new ticket {key} ({draft.issue_type}, "
            f"priority {draft.priority or 'default'}) ===\n{draft.summary}\n"
            f"labels: {', '.join((*draft.labels, draft.dedup_label))}\n\n{draft.description}\n"
        )
        return TicketRef(key=key, url=None)

    def find(self, *, project: str, label: str) -> TicketRef | None:
        key = self._labels.get(label)
        return TicketRef(key=key, url=None) if key else None

    def comment(self, *, key: str, body: str) -> None:
        for line in body.splitlines():
            self._print(f"[jira {key}] {line}")

    def has_comment(self, *, key: str, marker: str) -> bool:
        # a console cannot be searched; a crash mid-print may print a comment twice
        return False

    def resolve(self, *, key: str, preferred: Sequence[str]) -> str | None:
        self._print(f"[jira {key}] moved to Done")
        return "Done"

    def reopen(self, *, key: str) -> str | None:
        self._print(f"[jira {key}] moved back to To Do")
        return "To Do"

    def account_for(self, user: TicketUser) -> str:
        return user.account or user.email or "nobody"

    def assign(self, *, key: str, account: str) -> None:
        self._print(f"[jira {key}] assigned to {account}")

    def set_priority(self, *, key: str, priority: str) -> None:
        self._print(f"[jira {key}] priority {priority}")
