"""PagerDuty Events API v2: trigger, acknowledge and resolve with dedup_key = the incident id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.paging.providers.http import HttpFactory, default_http, post_json
from bot.paging.providers.ports import PageMessage
from bot.settings import Settings

__all__ = ["SEVERITIES", "PagerDutyEvents", "build", "pagerduty_event"]

# PagerDuty's payload.severity values, by incident severity
SEVERITIES = {"P1": "critical", "P2": "error", "P3": "warning"}
MAX_SUMMARY = 1024
SOURCE = "ai-incident-bot"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pagerduty_event(routing_key: str, action: str, message: PageMessage) -> dict[str, Any]:
    """Return the Events v2 body for `action` (trigger, acknowledge or resolve)."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": message.public_id,
    }
    if action != "trigger":
        return event
    details: dict[str, Any] = {
        "incident": message.public_id,
        "workflow": message.workflow,
        "category": message.category,
        "state": message.state,
        "why": message.reason,
        "severity_reasons": list(message.severity_reasons),
        **message.details,
    }
    if message.person is not None:
        details["paged"] = message.person.label
    event["payload"] = {
        "summary": _cut(f"{message.public_id} [{message.severity}] {message.title}", MAX_SUMMARY),
        "source": f"{SOURCE}/{message.workflow}"[:255],
        "severity": SEVERITIES.get(message.severity, "info"),
        "timestamp": datetime.now(UTC).isoformat(),
        "component": message.workflow[:255],
        "group": message.category[:255],
        "class": "ai-incident",
        "custom_details": details,
    }
    event["client"] = SOURCE
    return event


class PagerDutyEvents:
    """A Pager that enqueues PagerDuty events at PAGERDUTY_EVENTS_URL."""

    name = "PagerDuty"

    def __init__(self, *, url: str, routing_key: str, http: HttpFactory = default_http) -> None:
        self._url = url
        self._key = routing_key
        self._http = http

    def _send(self, action: str, message: PageMessage) -> dict[str, Any]:
        response = post_json(
            self._http,
            self._url,
            pagerduty_event(self._key, action, message),
            what=f"PagerDuty {action}",
        )
        body = response.json() if response.content else {}
        return {"action": action, "dedup_key": body.get("dedup_key", message.public_id)}

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]:
        # a repeated trigger with the same dedup_key is folded into the open alert by PagerDuty
        return self._send("trigger", message)

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._send("acknowledge", message)

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._send("resolve", message)


def build(settings: Settings, keys: Mapping[str, str]) -> PagerDutyEvents:
    """The registered factory (bot.paging.channels): PAGERDUTY_EVENTS_URL, the routing key."""
    return PagerDutyEvents(
        url=settings.pagerduty_events_url, routing_key=keys["pagerduty_routing_key"]
    )
