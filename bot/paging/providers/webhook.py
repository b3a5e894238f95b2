"""The generic paging webhook: JSON POSTs signed `X-AI-Incident-Signature: t=<unix>,v1=<hex>`."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.paging.providers.http import HttpFactory, default_http, post_json
from bot.paging.providers.ports import PageMessage
from bot.settings import Settings

__all__ = ["SIGNATURE_HEADER", "SignedWebhook", "build", "sign", "webhook_body"]

SIGNATURE_HEADER = "X-AI-Incident-Signature"
KEY_HEADER = "X-AI-Incident-Idempotency-Key"


def sign(secret: str, body: bytes, at: int) -> str:
    """Return the signature header value: HMAC-SHA256 of "<t>.<body>" with `secret`."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def webhook_body(event: str, message: PageMessage, key: str) -> dict[str, Any]:
    """Return the JSON a receiver gets: the event, the incident, the person paged."""
    person = message.person
    return {
        "event": event,
        "idempotency_key": key,
        "incident": {
            "id": message.public_id,
            "title": message.title,
            "severity": message.severity,
            "state": message.state,
            "workflow": message.workflow,
            "category": message.category,
            "severity_reasons": list(message.severity_reasons),
            "slack": {"channel": message.slack_channel, "thread_ts": message.slack_ts},
        },
        "reason": message.reason,
        "person": None
        if person is None
        else {
            "id": person.person,
            "name": person.name,
            "slack_id": person.slack_id,
            "email": person.email,
            "phone": person.phone,
        },
    }


class SignedWebhook:
    """A Pager that POSTs to `paging.webhook_url`; receivers dedupe by the idempotency key."""

    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        secret: str | None,
        http: HttpFactory = default_http,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._secret = secret or None
        self._http = http
        self._wall_clock = wall_clock

    def _send(self, event: str, message: PageMessage, key: str) -> dict[str, Any]:
        body = json.dumps(webhook_body(event, message, key), separators=(",", ":")).encode()
        headers = {KEY_HEADER: key}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body, int(self._wall_clock()))
        response = post_json(self._http, self._url, body, what=f"webhook {event}", headers=headers)
        return {"event": event, "status": response.status_code}

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]:
        return self._send("page", message, key)

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._send("acknowledge", message, key)

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._send("resolve", message, key)


def build(settings: Settings, keys: Mapping[str, str]) -> SignedWebhook:
    """The registered factory (bot.paging.channels): the URL, signed with the secret if set."""
    return SignedWebhook(url=keys["webhook_url"], secret=keys.get("webhook_secret"))
