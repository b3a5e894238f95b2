"""Opsgenie Alert API: create with alias = the incident id, add responders, acknowledge, close."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bot.paging.providers.http import HttpFactory, default_http, post_json
from bot.paging.providers.ports import PageMessage
from bot.settings import Settings

__all__ = ["PRIORITIES", "OpsgenieAlerts", "build", "opsgenie_alert"]

PRIORITIES = {"P1": "P1", "P2": "P2", "P3": "P3"}
MAX_MESSAGE = 130
MAX_DESCRIPTION = 15_000
SOURCE = "ai-incident-bot"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _responder(message: PageMessage) -> dict[str, str] | None:
    person = message.person
    if person is None or not person.email:
        return None
    return {"type": "user", "username": person.email}


def opsgenie_alert(message: PageMessage) -> dict[str, Any]:
    """Return the body of POST /v2/alerts for a page."""
    description = "\n".join(
        [
            f"{message.public_id} [{message.severity}] {message.title}",
            f"workflow {message.workflow} ({message.category}), state {message.state}",
            f"paged: {message.reason}",
            *(f"- {r}" for r in message.severity_reasons),
        ]
    )
    details = {
        "incident": message.public_id,
        "workflow": message.workflow,
        "category": message.category,
        "severity": message.severity,
        **{k: str(v) for k, v in message.details.items()},
    }
    body: dict[str, Any] = {
        "message": _cut(f"{message.public_id} [{message.severity}] {message.title}", MAX_MESSAGE),
        "alias": message.public_id,
        "description": _cut(description, MAX_DESCRIPTION),
        "tags": [t[:50] for t in ("ai-incident", message.severity, message.workflow)],
        "details": details,
        "entity": message.workflow[:512],
        "source": SOURCE,
        "priority": PRIORITIES.get(message.severity, "P3"),
        "note": _cut(message.reason, 25_000),
    }
    responder = _responder(message)
    if responder is not None:
        body["responders"] = [responder]
    return body


class OpsgenieAlerts:
    """A Pager on Opsgenie's Alert API at OPSGENIE_API_URL, with a GenieKey."""

    name = "Opsgenie"

    def __init__(self, *, base_url: str, api_key: str, http: HttpFactory = default_http) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"GenieKey {api_key}"}
        self._http = http

    def _alias_url(self, message: PageMessage, action: str) -> str:
        alias = quote(message.public_id, safe="")
        return f"{self._base}/v2/alerts/{alias}/{action}?identifierType=alias"

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]:
        # Opsgenie folds a second create with the same alias into the open alert (its count
        # goes up), so creating again is safe; it does not add responders, hence the follow-up
        response = post_json(
            self._http,
            f"{self._base}/v2/alerts",
            opsgenie_alert(message),
            what="Opsgenie create alert",
            headers=self._headers,
        )
        result: dict[str, Any] = {"request_id": response.json().get("requestId")}
        responder = _responder(message)
        if message.follow_up and responder is not None:
            added = post_json(
                self._http,
                self._alias_url(message, "responders"),
                {"responder": responder, "source": SOURCE, "note": message.reason[:25_000]},
                what="Opsgenie add responder",
                headers=self._headers,
            )
            result["responder_request_id"] = added.json().get("requestId")
        return result

    def _act(self, message: PageMessage, action: str, note: str) -> dict[str, Any]:
        response = post_json(
            self._http,
            self._alias_url(message, action),
            {"source": SOURCE, "note": note},
            what=f"Opsgenie {action}",
            headers=self._headers,
            # the alert is gone (closed in Opsgenie already): nothing left to do
            ok_statuses=frozenset({404}),
        )
        if response.status_code == 404:
            return {"action": action, "skipped": "no such alert"}
        return {"action": action, "request_id": response.json().get("requestId")}

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._act(message, "acknowledge", f"{message.public_id} acknowledged in Slack")

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._act(message, "close", f"{message.public_id} resolved")


def build(settings: Settings, keys: Mapping[str, str]) -> OpsgenieAlerts:
    """The registered factory (bot.paging.channels): OPSGENIE_API_URL, the API key."""
    return OpsgenieAlerts(base_url=settings.opsgenie_api_url, api_key=keys["opsgenie_api_key"])
