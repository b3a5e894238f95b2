"""Authenticate every inbound request and decide what its credential may do, in constant time.

One function, `authenticate`, answers for every webhook and API route, so the routes cannot drift
apart. The global `AI_INCIDENT_WEBHOOK_TOKEN` is the operator's key: every route, every source's
handoffs. A source's own `token` or `hmac_secret` opens only what its `kind` may do:

| kind | may |
|---|---|
| `alertmanager`, `grafana`, `generic` | post alerts (`/webhooks/alertmanager`, `/webhooks/alerts`) |
| `agent` | post handoffs, read its own handoffs, read the kill-switch flags (OFREP); post runs and metrics |
| `telemetry` | post runs (`/webhooks/runs`) and OTLP metrics (`/v1/metrics`) |

A source with an `hmac_secret` signs what it posts (Grafana's `X-Grafana-Alerting-Signature`
for alert sources, `X-AI-Incident-Signature` for agents); an agent may read with its `token`
or a signature. Jira and Slack sign with secrets of their own (`authenticate_jira`,
`verify_slack`). A credential that is not text a client could have been given (non-ASCII, a
timestamp that is no unix time) is a wrong credential: 401, never a server error.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.config import Policy, Source
from bot.handoffs.domain import SIGNATURE_HEADER, BadSignature, verify

__all__ = [
    "AGENT_SIGNATURE",
    "DEFAULT_SOURCE",
    "GRAFANA_SIGNATURE",
    "GRAFANA_TIMESTAMP",
    "JIRA_SIGNATURE",
    "SLACK_SIGNATURE",
    "SLACK_TIMESTAMP",
    "Caller",
    "Scope",
    "Unauthorized",
    "authenticate",
    "authenticate_jira",
    "grafana_signature",
    "jira_signature",
    "scopes_of",
    "verify_slack",
]

GRAFANA_SIGNATURE = "x-grafana-alerting-signature"
GRAFANA_TIMESTAMP = "x-grafana-alerting-signature-timestamp"
AGENT_SIGNATURE = SIGNATURE_HEADER.lower()
# Jira Cloud signs webhooks that have a secret with X-Hub-Signature: sha256=<hex HMAC of the body>
JIRA_SIGNATURE = "x-hub-signature"
SLACK_SIGNATURE = "x-slack-signature"
SLACK_TIMESTAMP = "x-slack-request-timestamp"
REPLAY_WINDOW_S = 300
DEFAULT_SOURCE = "default"


class Unauthorized(Exception):
    """The request does not prove it may do what it asks; nothing is stored."""


class Scope(StrEnum):
    """What a request asks to do; the value reads in a sentence ("cannot post handoffs")."""

    ALERTS = "post alerts"
    HANDOFFS = "post handoffs"
    HANDOFF_READ = "read handoffs"
    FLAGS = "read kill-switch flags"
    TELEMETRY = "post runs and metrics"


_ALERT_SCOPES = frozenset({Scope.ALERTS})
_AGENT_SCOPES = frozenset({Scope.HANDOFFS, Scope.HANDOFF_READ, Scope.FLAGS, Scope.TELEMETRY})
_TELEMETRY_SCOPES = frozenset({Scope.TELEMETRY})
# a source with an hmac_secret must sign these (they carry a body worth signing)
_SIGNED = frozenset({Scope.ALERTS, Scope.HANDOFFS})


def scopes_of(source: Source) -> frozenset[Scope]:
    """Return what a source's own credentials may do, by its kind."""
    if source.kind == "agent":
        return _AGENT_SCOPES
    if source.kind == "telemetry":
        return _TELEMETRY_SCOPES
    return _ALERT_SCOPES


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a source, or the operator (the global token) acting as `default`."""

    source: str
    operator: bool = False

    def owns(self, owner: str) -> bool:
        """Return whether this caller may see something stored for the source `owner`."""
        return self.operator or owner == self.source


# -- constant-time comparison of anything a client sends ---------------------------------------


def _wire(value: str) -> bytes:
    """Return the bytes a header value arrived as (servers decode header bytes as latin-1)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _same(given: str, expected: str) -> bool:
    """Compare a header value with a secret in constant time; any text at all is merely unequal.

    `hmac.compare_digest` refuses non-ASCII `str` with TypeError, so both sides are bytes.
    """
    return hmac.compare_digest(_wire(given), expected.encode("utf-8", "surrogatepass"))


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unix_time(stamp: str) -> float | None:
    """Return a timestamp header as seconds, or None when it is no finite unix time."""
    text = stamp.strip()
    if not text.isascii():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    # `nan` compares false with everything, so it would pass any window check
    return value if math.isfinite(value) else None


# -- Grafana -----------------------------------------------------------------------------------


def grafana_signature(secret: str, body: bytes, timestamp: str | None) -> str:
    """Return Grafana's hex HMAC-SHA256 of the body, prefixed by `timestamp:` when one is sent."""
    message = f"{timestamp}:".encode() + body if timestamp is not None else body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _grafana_problem(
    name: str, source: Source, secret: str, headers: Mapping[str, str], body: bytes, now: float
) -> str | None:
    """Return why a Grafana signature does not prove the source sent the body, or None."""
    given = headers.get(GRAFANA_SIGNATURE, "")
    stamp = headers.get(GRAFANA_TIMESTAMP)
    if stamp is None:
        if source.require_timestamp:
            return (
                f"source {name!r} has require_timestamp: true; sign with a timestamp "
                f"(X-Grafana-Alerting-Signature-Timestamp) so a signature cannot be replayed"
            )
    else:
        when = _unix_time(stamp)
        if when is None:
            return "X-Grafana-Alerting-Signature-Timestamp is not a unix time in seconds"
        if abs(now - when) > REPLAY_WINDOW_S:
            return (
                f"X-Grafana-Alerting-Signature-Timestamp is more than {REPLAY_WINDOW_S} s "
                "away from now"
            )
    expected = grafana_signature(secret, body, stamp)
    if not _same(given.strip().lower(), expected):
        return "bad signature"
    return None


# -- the one decision for every route ----------------------------------------------------------


def _refused(name: str, source: Source, scope: Scope) -> Unauthorized:
    kind = {"agent": "an agent source", "telemetry": "a telemetry source"}.get(
        source.kind, "an alert source"
    )
    return Unauthorized(f"source {name!r} is {kind} and cannot {scope}")


def _by_agent_signature(
    signature: str, body: bytes, candidates: Mapping[str, Source], now: float
) -> str:
    problem = "no agent source is configured with an hmac_secret"
    for name, source in candidates.items():
        if source.kind != "agent" or not source.hmac_secret:
            continue
        try:
            verify(source.hmac_secret, body, signature, now=now)
        except BadSignature as exc:
            problem = str(exc)
            continue
        return name
    raise Unauthorized(problem)


def _by_grafana_signature(
    headers: Mapping[str, str], body: bytes, candidates: Mapping[str, Source], now: float
) -> str:
    problem = "no alert source is configured with an hmac_secret"
    for name, source in candidates.items():
        if source.kind == "agent" or not source.hmac_secret:
            continue
        found = _grafana_problem(name, source, source.hmac_secret, headers, body, now)
        if found is None:
            return name
        problem = found
    raise Unauthorized(problem)


def authenticate(
    *,
    scope: Scope,
    headers: Mapping[str, str],
    body: bytes,
    policy: Policy,
    global_token: str | None,
    source_hint: str | None = None,
    now: float | None = None,
) -> Caller:
    """Return who sent the request if its credential may do `scope`; raise Unauthorized if not.

    `source_hint` (`?source=`) pins the source whose credential is checked. Without it a
    signature is checked against each source of a kind that may do `scope`, and a bearer token
    against the global token and every source's token.
    """
    now = time.time() if now is None else now
    candidates: Mapping[str, Source] = policy.sources
    if source_hint is not None:
        hinted = policy.sources.get(source_hint)
        if hinted is None:
            raise Unauthorized(f"unknown source {source_hint!r}")
        if scope not in scopes_of(hinted):
            raise _refused(source_hint, hinted, scope)
        candidates = {source_hint: hinted}

    agent_signature = headers.get(AGENT_SIGNATURE)
    if agent_signature and scope in _AGENT_SCOPES:
        return Caller(_by_agent_signature(agent_signature, body, candidates, now))
    token = _bearer(headers)

    if source_hint is not None:
        source = candidates[source_hint]
        if source.hmac_secret and scope in _SIGNED:
            if scope is Scope.ALERTS:
                return Caller(_by_grafana_signature(headers, body, candidates, now))
            raise Unauthorized(
                f"source {source_hint!r} signs its requests: send {SIGNATURE_HEADER}"
            )
        if token and source.token:
            if _same(token, source.token):
                return Caller(source_hint)
        elif token and global_token and _same(token, global_token):
            return Caller(source_hint, operator=True)
        raise Unauthorized("bad or missing bearer token")

    if token:
        if global_token and _same(token, global_token):
            return Caller(DEFAULT_SOURCE, operator=True)
        owners = [
            (name, source)
            for name, source in candidates.items()
            if source.token and _same(token, source.token)
        ]
        for name, source in owners:
            if scope in scopes_of(source) and not (source.hmac_secret and scope in _SIGNED):
                return Caller(name)
        if not owners:
            raise Unauthorized("bad bearer token")
        name, source = owners[0]
        if scope not in scopes_of(source):
            raise _refused(name, source, scope)
        raise Unauthorized(f"source {name!r} signs its requests; its token alone is not enough")
    if scope is Scope.ALERTS and headers.get(GRAFANA_SIGNATURE):
        return Caller(_by_grafana_signature(headers, body, candidates, now))
    if scope in _AGENT_SCOPES:
        raise Unauthorized(f"missing bearer token or {SIGNATURE_HEADER}")
    raise Unauthorized("missing bearer token")


# -- Jira --------------------------------------------------------------------------------------


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
        if _same(signature.strip().lower(), jira_signature(secret, body)):
            return
        raise Unauthorized("bad signature")
    given = query.get("secret")
    if given:
        # the query string is percent-decoded as UTF-8, not latin-1 like a header
        if hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode()):
            return
    elif (bearer := _bearer(headers)) and _same(bearer, secret):
        return
    raise Unauthorized("bad or missing secret")


# -- Slack -------------------------------------------------------------------------------------


def verify_slack(
    *, signing_secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    """Check Slack's `v0` signature over the raw body and its 5-minute window; raise if bad.

    Done before Slack's SDK sees the request: the SDK logs a failing request's body, and a
    timestamp that is no number makes it raise.
    """
    now = time.time() if now is None else now
    stamp = headers.get(SLACK_TIMESTAMP, "").strip()
    signature = headers.get(SLACK_SIGNATURE, "").strip()
    if not stamp or not signature:
        raise Unauthorized("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    if not (stamp.isascii() and stamp.isdigit()):
        raise Unauthorized("X-Slack-Request-Timestamp is not a unix time in seconds")
    if abs(now - int(stamp)) > REPLAY_WINDOW_S:
        raise Unauthorized(
            f"X-Slack-Request-Timestamp is more than {REPLAY_WINDOW_S} s away from now"
        )
    digest = hmac.new(
        signing_secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    if not _same(signature, f"v0={digest}"):
        raise Unauthorized("bad Slack signature")
