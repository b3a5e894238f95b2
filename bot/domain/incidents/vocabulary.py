"""Incident states, journal kinds and ids: the vocabulary of §5 and §10."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "IncidentState",
    "InvalidIncidentId",
    "JournalKind",
    "format_incident_id",
    "journal_kind_of",
    "parse_incident_id",
]


class IncidentState(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        """Return True until the incident is resolved."""
        return self is not IncidentState.RESOLVED


class JournalKind(StrEnum):
    """What a journal entry records: what changed, who noticed, what was tried, what worked."""

    CHANGE = "change"
    OBSERVATION = "observation"
    ACTION = "action"
    RESULT = "result"
    ROOT_CAUSE = "root_cause"
    DECISION = "decision"


class InvalidIncidentId(ValueError):
    """Text that is not an incident id."""


_INC = re.compile(r"^(?:INC-)?(\d{1,9})$", re.IGNORECASE)


def format_incident_id(number: int) -> str:
    """Return the public id of an incident number."""
    return f"INC-{number}"


def parse_incident_id(text: str) -> int:
    """Return the number in `INC-7` (or `7`); raise InvalidIncidentId otherwise."""
    match = _INC.match(text.strip())
    if match is None:
        raise InvalidIncidentId(f"{text!r} is not an incident id like INC-7")
    return int(match.group(1))


_KIND_PREFIXES = {
    "change": JournalKind.CHANGE,
    "observation": JournalKind.OBSERVATION,
    "noticed": JournalKind.OBSERVATION,
    "action": JournalKind.ACTION,
    "tried": JournalKind.ACTION,
    "result": JournalKind.RESULT,
    "worked": JournalKind.RESULT,
    "root cause": JournalKind.ROOT_CAUSE,
    "rootcause": JournalKind.ROOT_CAUSE,
    "decision": JournalKind.DECISION,
}


def journal_kind_of(text: str) -> tuple[JournalKind, str]:
    """Read an optional `kind:` prefix of a thread reply ("action: restarted worker-1")."""
    head, sep, rest = text.partition(":")
    kind = _KIND_PREFIXES.get(head.strip().lower()) if sep else None
    if kind is None or not rest.strip():
        return JournalKind.OBSERVATION, text
    return kind, rest.strip()
