"""The port the paging delivery talks to: one `Pager` per channel (Slack DM, providers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.paging.escalation import Contact

__all__ = ["PageMessage", "Pager"]


@dataclass(frozen=True)
class PageMessage:
    """What a page says, already redacted; providers shape it their own way.

    `follow_up` is set when an earlier page of the incident through the same provider may have
    created its alert already (Opsgenie then adds the person as a responder).
    """

    incident_id: int
    public_id: str
    title: str
    severity: str
    workflow: str
    category: str
    state: str
    reason: str
    person: Contact | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    severity_reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    follow_up: bool = False


class Pager(Protocol):
    """Pages through one channel; raises RetryLater / GiveUp (bot.integrations.ports).

    `uncertain`: an earlier attempt may have reached the receiver; look before paging again
    where the receiver allows it.
    """

    name: str

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]: ...

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]: ...

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]: ...
