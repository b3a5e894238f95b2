"""Local mode: print pages a channel would send, for channels that are not configured."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from bot.paging.providers.ports import PageMessage

__all__ = ["ConsolePager"]


class ConsolePager:
    """A Pager that writes one readable line per page instead of calling anyone."""

    def __init__(self, name: str, stream: TextIO | None = None, *, why: str = "") -> None:
        self.name = name
        self._stream = stream or sys.stdout
        self._why = why
        self._lock = threading.Lock()

    def _print(self, text: str) -> dict[str, Any]:
        note = f" ({self._why})" if self._why else ""
        with self._lock:
            self._stream.write(f"[page via {self.name}{note}] {text}\n")
            self._stream.flush()
        return {"printed": True}

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]:
        who = message.person.label if message.person else "the on-call"
        if message.person and message.person.slack_id:
            who += f" ({message.person.slack_id})"
        return self._print(
            f"{who}: {message.public_id} [{message.severity}] {message.title} — {message.reason}"
        )

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._print(f"{message.public_id} acknowledged")

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._print(f"{message.public_id} resolved")
