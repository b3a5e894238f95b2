"""Authenticate webhook senders: bearer tokens and HMAC signatures, in constant time."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from bot.config import Policy

__all__ = [
    "GRAFANA_SIGNATURE",
    "GRAFANA_TIMESTAMP",
    "JIRA_SIGNATURE",
    "Unauthorized",
    "authenticate",
    "authenticate_jira",
    "grafana_signature",
    "jira_signature",
]

GRAFANA_SIGNATURE = "x-grafana-alerting-signature"
GRAFANA_TIMESTAMP = "x-grafana-alerting-signature-timestamp"
# Jira Cloud signs webhooks that have a secret with X-Hub-Signature: sha256=<hex HMAC of the body>
JIRA_SIGNATURE = "x-hub-signature"
REPLAY_WINDOW_S = 300
DEFAULT_SOURCE = "default"


class Unauthorized(Exception):
    """The request does not prove who sent it; nothing is stored."""


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def grafana_signature(secret: str, body: bytes, timestamp: str | None) -> str:
    """Return Grafana's hex HMAC-SHA256 of the body, prefixed by `timestamp:` when one is sent."""
    message = f"{timestamp}:".encode() + body if timestamp else body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _grafana_ok(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    given = headers.get(GRAFANA_SIGNATURE)
    if not given:
        return False
    stamp = headers.get(GRAFANA_TIMESTAMP)
    if stamp is not None:
        try:
            if abs(now - float(stamp)) > REPLAY_WINDOW_S:
                return False
        except ValueError:
            return False
    return hmac.compare_digest(grafana_signature(secret, body, stamp), given.strip().lower())


def authenticate(
    *,
    headers: Mapping[str, str],
    body: bytes,
    policy: Policy,
    global_token: str | None,
    source_hint: str | None = None,
    now: float | None = None,
) -> str:
    """Return the name of the source that sent the request, or raise Unauthorized.

    A source with an HMAC secret must sign; one with its own token must present it; every
    other sender presents the global webhook token and is the `default` source.
    """
    now = time.time() if now is None else now
    token = _bearer(headers)
    if source_hint is not None:
        source = policy.sources.get(source_hint)
        if source is None:
            raise Unauthorized(f"unknown source {source_hint!r}")
        if source.hmac_secret:
            if _grafana_ok(source.hmac_secret, headers, body, now):
                return source_hint
            raise Unauthorized("bad or missing signature")
        expected = source.token or global_token
        if token and expected and hmac.compare_digest(token, expected):
            return source_hint
        raise Unauthorized("bad or missing bearer token")
    if token:
        for name, source in policy.sources.items():
            if source.token and not source.hmac_secret and hmac.compare_digest(token, source.token):
                return name
        if global_token and hmac.compare_digest(token, global_token):
            return DEFAULT_SOURCE
        raise Unauthorized("bad bearer token")
    if headers.get(GRAFANA_SIGNATURE):
        for name, source in policy.sources.items():
            if source.hmac_secret and _grafana_ok(source.hmac_secret, headers, body, now):
                return name
        raise Unauthorized("bad signature")
    raise Unauthorized("missing bearer token")


def jira_signature(secret: str, body: bytes) -> str:
    """Return Jira's `sha256=<hex>` HMAC of a webhook body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authenticate_jira(
    *, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, secret: str | None
) -> None:
    """Accept a Jira webhook signed with the secret, or carrying it; raise Unauthorized otherwise.

    Jira Cloud signs (`X-Hub-Signature`); Data Center cannot, so its webhook URL carries the
    secret as `?secret=`, and a proxy or automation rule may send it as a bearer token.
    """
    if not secret:
        raise Unauthorized("no Jira webhook secret is configured (jira.webhook_secret)")
    signature = headers.get(JIRA_SIGNATURE)
    if signature:
        if hmac.compare_digest(jira_signature(secret, body), signature.strip().lower()):
            return
        raise Unauthorized("bad signature")
    given = query.get("secret") or _bearer(headers)
    if given and hmac.compare_digest(given.encode(), secret.encode()):
        return
    raise Unauthorized("bad or missing secret")
