"""Stateful stand-ins for PagerDuty Events v2, Opsgenie's Alert API and a paging webhook receiver.

Each serves on an ephemeral loopback port in a background thread, records every request, checks
each request's shape field by field against the vendor's published rules, keeps the state a real
service would (alerts by dedup key or alias, acknowledged, resolved), and can be made to fail.

PagerDuty Events API v2 (developer.pagerduty.com/docs/events-api-v2/trigger-events,
.../acknowledge-events, .../resolve-events), at ``POST /v2/enqueue``:

- ``routing_key`` (required): the 32-character integration key; one not in ``routing_keys`` is
  refused like PagerDuty does, 400 ``Invalid routing key``.
- ``event_action`` (required): ``trigger``, ``acknowledge`` or ``resolve``.
- ``dedup_key``: at most 255 characters; required for acknowledge and resolve; a trigger without
  one gets a generated key.
- ``payload`` (required for trigger): ``summary`` (required, at most 1024 characters),
  ``source`` (required), ``severity`` (required: ``critical``, ``error``, ``warning``,
  ``info``), optional ``timestamp`` (ISO 8601), ``component``, ``group``, ``class``,
  ``custom_details`` (an object). Top level may also carry ``images``, ``links``, ``client``,
  ``client_url``. Anything else is a violation.
- Answers 202 ``{"status": "success", "message": "Event processed", "dedup_key": …}``; a bad
  event 400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": […]}``.

Opsgenie Alert API (docs.opsgenie.com/docs/alert-api), under ``/v2/alerts``:

- Auth ``Authorization: GenieKey <key>``; a missing or unknown key is 401.
- ``POST /v2/alerts``: ``message`` (required, at most 130 characters), ``alias`` (512),
  ``description`` (15000), ``responders`` (at most 50 of ``{type: team|user|escalation|schedule``
  with ``id`` or ``name``, or ``username`` for users``}``), ``visibleTo``, ``actions`` (at most
  10, 50 characters each), ``tags`` (at most 20, 50 characters each), ``details`` (string values,
  8000 characters in all), ``entity`` (512), ``source`` (100), ``priority`` (``P1`` to ``P5``),
  ``user`` (100), ``note`` (25000). A create with the alias of an open alert only raises its
  count (Opsgenie's de-duplication; responders are not added).
- ``POST /v2/alerts/{identifier}/acknowledge|close|responders?identifierType=alias`` (or ``id``,
  ``tiny``): optional ``user``, ``source``, ``note``; ``responders`` needs ``responder``.
- Requests are processed asynchronously: 202 ``{"result": "Request will be processed", "took":
  …, "requestId": …}``; a request about an alert that does not exist is accepted and fails later
  (kept in `failed_requests`, as Opsgenie's request-status API would report it). Invalid bodies
  are 422 with ``errors`` by field.

The paging webhook receiver (``POST /page``) checks ``X-AI-Incident-Signature: t=<unix>,v1=<hex>``
(HMAC-SHA256 of ``"<t>.<body>"`` with `secret`, at most five minutes old) and keeps each body.

Making them misbehave: ``fail_next(status=…, retry_after=…, times=…, effect=…)`` answers the
next requests with that HTTP status (``effect=True``: the request takes effect first, only the
answer fails). Inspecting: `requests` (every request with its answer), `violations`,
`assert_no_violations`, and each stand-in's own state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins.server import LoopbackServer

__all__ = [
    "OpsgenieStandin",
    "PagerDutyStandin",
    "Recorded",
    "WebhookReceiver",
]

PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_TOP_LEVEL = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
PD_PAYLOAD = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}
OG_LIMITS = {
    "message": 130,
    "alias": 512,
    "description": 15_000,
    "entity": 512,
    "source": 100,
    "user": 100,
    "note": 25_000,
}
OG_FIELDS = {
    *OG_LIMITS,
    "responders",
    "visibleTo",
    "actions",
    "tags",
    "details",
    "priority",
}
OG_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
OG_IDENTIFIER_TYPES = ("id", "alias", "tiny")


@dataclass
class Recorded:
    """One request a stand-in received, and its answer."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float
    status: int | None = None
    answer: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    effect: bool


class _Standin(ABC):
    """An HTTP service on 127.0.0.1 in a background thread; `start`/`stop` or use `with`."""

    name = "stand-in"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.violations: list[str] = []
        self._requests: list[Recorded] = []
        self._failures: deque[_Failure] = deque()
        self._server: LoopbackServer | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    @abstractmethod
    def _routes(self) -> list[Route]:
        """The stand-in's endpoints."""

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError(f"the {self.name} stand-in is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> _Standin:
        self._server = LoopbackServer(
            Starlette(routes=self._routes()),
            name=f"{self.name} stand-in",
            timeout_graceful_shutdown=2,
        )
        self.port = self._server.start(timeout)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> _Standin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls and inspection ------------------------------------------------------------

    def fail_next(
        self,
        *,
        status: int = 500,
        retry_after: float | None = None,
        times: int = 1,
        effect: bool = False,
    ) -> None:
        """Answer the next `times` requests with HTTP `status` (429s carry Retry-After)."""
        with self._lock:
            self._failures.extend([_Failure(status, retry_after, effect)] * times)

    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def assert_no_violations(self) -> None:
        with self._lock:
            found = list(self.violations)
        if found:
            listing = "\n".join(f"- {v}" for v in found)
            raise AssertionError(f"{len(found)} request(s) {self.name} would refuse:\n{listing}")

    # -- HTTP -------------------------------------------------------------------------------

    async def _record(self, request: Request) -> Recorded:
        raw = await request.body()
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                parsed = None
        rec = Recorded(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
            at=time.time(),
        )
        with self._lock:
            self._requests.append(rec)
        return rec

    def _injected(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    @staticmethod
    def _failure_response(failure: _Failure, body: dict[str, Any]) -> JSONResponse:
        headers = {}
        if failure.status == 429 and failure.retry_after is not None:
            headers["Retry-After"] = str(int(failure.retry_after))
        return JSONResponse(body, status_code=failure.status, headers=headers)

    def _finish(self, rec: Recorded, response: JSONResponse) -> JSONResponse:
        rec.status = response.status_code
        rec.answer = json.loads(bytes(response.body)) if response.body else None
        return response

    def _violate(self, rec: Recorded, problems: list[str]) -> None:
        with self._lock:
            self.violations.extend(f"{rec.method} {rec.path}: {p}" for p in problems)


def _string(value: Any, name: str, limit: int | None, problems: list[str]) -> None:
    if not isinstance(value, str):
        problems.append(f"{name} must be a string, got {type(value).__name__}")
    elif limit is not None and len(value) > limit:
        problems.append(f"{name} is {len(value)} characters, more than {limit}")


# -- PagerDuty --------------------------------------------------------------------------------


@dataclass
class PagerDutyAlert:
    dedup_key: str
    status: str  # triggered, acknowledged, resolved
    summary: str
    severity: str
    source: str
    custom_details: dict[str, Any]
    events: list[str] = field(default_factory=list)


class PagerDutyStandin(_Standin):
    """PagerDuty's Events API v2 at ``{url}`` (``/v2/enqueue``)."""

    name = "PagerDuty"

    def __init__(self, routing_keys: Collection[str] = ("R0UTINGKEY0000000000000000000001",)):
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.alerts: dict[str, PagerDutyAlert] = {}  # by dedup key; the latest alert per key
        self.incidents: list[PagerDutyAlert] = []  # every alert ever opened, in order

    def __enter__(self) -> PagerDutyStandin:
        self.start()
        return self

    @property
    def url(self) -> str:
        """PAGERDUTY_EVENTS_URL for the bot."""
        return f"{self.base_url}/v2/enqueue"

    def _routes(self) -> list[Route]:
        return [Route("/v2/enqueue", self._enqueue, methods=["POST"])]

    @staticmethod
    def check(event: Any) -> list[str]:
        """Return what is wrong with an event, field by field (empty when it is valid)."""
        problems: list[str] = []
        if not isinstance(event, dict):
            return ["the body must be a JSON object"]
        for name in sorted(set(event) - PD_TOP_LEVEL):
            problems.append(f"unknown field {name!r}")
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            problems.append("routing_key must be the 32-character integration key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            problems.append(f"event_action must be trigger, acknowledge or resolve, got {action!r}")
        dedup = event.get("dedup_key")
        if dedup is not None:
            _string(dedup, "dedup_key", 255, problems)
        elif action in ("acknowledge", "resolve"):
            problems.append(f"dedup_key is required to {action}")
        payload = event.get("payload")
        if action == "trigger":
            if not isinstance(payload, dict):
                problems.append("payload (an object) is required to trigger")
            else:
                for name in sorted(set(payload) - PD_PAYLOAD):
                    problems.append(f"unknown field payload.{name!r}")
                if "summary" not in payload:
                    problems.append("payload.summary is required")
                else:
                    _string(payload["summary"], "payload.summary", 1024, problems)
                source = payload.get("source")
                if not isinstance(source, str) or not source:
                    problems.append("payload.source is required")
                if payload.get("severity") not in PD_SEVERITIES:
                    problems.append(
                        f"payload.severity must be one of {', '.join(PD_SEVERITIES)}, got "
                        f"{payload.get('severity')!r}"
                    )
                stamp = payload.get("timestamp")
                if stamp is not None:
                    try:
                        datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
                    except ValueError:
                        problems.append(f"payload.timestamp {stamp!r} is not ISO 8601")
                for name in ("component", "group", "class"):
                    if name in payload:
                        _string(payload[name], f"payload.{name}", None, problems)
                details = payload.get("custom_details")
                if details is not None and not isinstance(details, dict):
                    problems.append("payload.custom_details must be an object")
        for name in ("client", "client_url"):
            if name in event:
                _string(event[name], name, None, problems)
        return problems

    async def _enqueue(self, request: Request) -> Response:
        rec = await self._record(request)
        failure = self._injected()
        if failure is not None and not failure.effect:
            return self._finish(
                rec, self._failure_response(failure, self._error_body(failure.status))
            )
        problems = []
        if not rec.headers.get("content-type", "").startswith("application/json"):
            problems.append("Content-Type must be application/json")
        problems += self.check(rec.json)
        if problems:
            self._violate(rec, problems)
            body = {"status": "invalid event", "message": "Event object is invalid"}
            return self._finish(rec, JSONResponse({**body, "errors": problems}, status_code=400))
        event: dict[str, Any] = rec.json
        if event["routing_key"] not in self.routing_keys:
            body = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["Invalid routing key"],
            }
            return self._finish(rec, JSONResponse(body, status_code=400))
        dedup = self._apply(event)
        if failure is not None:
            return self._finish(
                rec, self._failure_response(failure, self._error_body(failure.status))
            )
        body = {"status": "success", "message": "Event processed", "dedup_key": dedup}
        return self._finish(rec, JSONResponse(body, status_code=202))

    @staticmethod
    def _error_body(status: int) -> dict[str, Any]:
        if status == 429:
            return {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. Please retry later.",
            }
        return {"status": "unrecognized object", "message": f"HTTP {status}"}

    def _apply(self, event: dict[str, Any]) -> str:
        action = event["event_action"]
        with self._lock:
            dedup = str(event.get("dedup_key") or uuid.uuid4().hex)
            alert = self.alerts.get(dedup)
            if action == "trigger":
                payload = event["payload"]
                if alert is None or alert.status == "resolved":
                    alert = PagerDutyAlert(
                        dedup_key=dedup,
                        status="triggered",
                        summary=payload["summary"],
                        severity=payload["severity"],
                        source=payload["source"],
                        custom_details=dict(payload.get("custom_details") or {}),
                    )
                    self.alerts[dedup] = alert
                    self.incidents.append(alert)
                alert.events.append("trigger")
            elif alert is not None and alert.status != "resolved":
                alert.status = "acknowledged" if action == "acknowledge" else "resolved"
                alert.events.append(action)
            return dedup

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        """Accepted events (202), in order; only those of `action` when given."""
        return [
            r.json
            for r in self.requests()
            if r.status == 202 and (action is None or r.json.get("event_action") == action)
        ]


# -- Opsgenie ---------------------------------------------------------------------------------


@dataclass
class OpsgenieAlert:
    id: str
    tiny_id: str
    alias: str
    message: str
    priority: str
    responders: list[dict[str, Any]]
    status: str = "open"  # open, closed
    acknowledged: bool = False
    count: int = 1
    notes: list[str] = field(default_factory=list)


class OpsgenieStandin(_Standin):
    """Opsgenie's Alert API at ``{base_url}`` (OPSGENIE_API_URL)."""

    name = "Opsgenie"

    def __init__(self, api_keys: Collection[str] = ("og-test-key",)) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.alerts: list[OpsgenieAlert] = []
        self.failed_requests: list[tuple[str, str]] = []  # (requestId, why), as Opsgenie reports

    def __enter__(self) -> OpsgenieStandin:
        self.start()
        return self

    def _routes(self) -> list[Route]:
        return [
            Route("/v2/alerts", self._create, methods=["POST"]),
            Route("/v2/alerts/{identifier}/{action}", self._act, methods=["POST"]),
        ]

    def alert(self, alias: str) -> OpsgenieAlert | None:
        """The latest alert with `alias`."""
        with self._lock:
            found = [a for a in self.alerts if a.alias == alias]
        return found[-1] if found else None

    @staticmethod
    def _check_responder(value: Any, name: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{name} must be an object")
            return
        kind = value.get("type")
        if kind not in OG_RESPONDER_TYPES:
            problems.append(f"{name}.type must be one of {', '.join(OG_RESPONDER_TYPES)}")
        keys = {"id", "name"} | ({"username"} if kind == "user" else set())
        if not any(isinstance(value.get(k), str) and value.get(k) for k in keys):
            problems.append(f"{name} needs {' or '.join(sorted(keys))}")
        for extra in sorted(set(value) - keys - {"type"}):
            problems.append(f"unknown field {name}.{extra}")

    @classmethod
    def check_create(cls, body: Any) -> dict[str, str]:
        """Return what is wrong with a create-alert body, by field (empty when valid)."""
        problems: dict[str, str] = {}
        if not isinstance(body, dict):
            return {"body": "must be a JSON object"}

        def add(name: str, found: list[str]) -> None:
            if found:
                problems[name] = "; ".join(found)

        for name in sorted(set(body) - OG_FIELDS):
            problems[name] = "unknown field"
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            problems["message"] = "Message can not be empty."
        for name, limit in OG_LIMITS.items():
            if name in body and name not in problems:
                found: list[str] = []
                _string(body[name], name, limit, found)
                add(name, found)
        for name, most in (("responders", 50), ("visibleTo", 50)):
            if name in body:
                found = []
                items = body[name]
                if not isinstance(items, list) or len(items) > most:
                    found.append(f"must be a list of at most {most}")
                else:
                    for i, item in enumerate(items):
                        cls._check_responder(item, f"{name}[{i}]", found)
                add(name, found)
        for name, most in (("actions", 10), ("tags", 20)):
            if name in body:
                items = body[name]
                if not isinstance(items, list) or len(items) > most:
                    problems[name] = f"must be a list of at most {most}"
                elif any(not isinstance(i, str) or len(i) > 50 for i in items):
                    problems[name] = "items must be strings of at most 50 characters"
        if "details" in body:
            details = body["details"]
            if not isinstance(details, dict) or any(
                not isinstance(v, str) for v in details.values()
            ):
                problems["details"] = "must be an object of strings"
            elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
                problems["details"] = "more than 8000 characters in all"
        if "priority" in body and body["priority"] not in ("P1", "P2", "P3", "P4", "P5"):
            problems["priority"] = "must be one of P1, P2, P3, P4, P5"
        return problems

    def _authorized(self, rec: Recorded) -> bool:
        scheme, _, key = rec.headers.get("authorization", "").partition(" ")
        return scheme == "GenieKey" and key in self.api_keys

    def _accepted(self, rec: Recorded) -> JSONResponse:
        body = {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())}
        return self._finish(rec, JSONResponse(body, status_code=202))

    def _gate(self, rec: Recorded) -> tuple[JSONResponse | None, _Failure | None]:
        failure = self._injected()
        if failure is not None and not failure.effect:
            body = {"message": "injected failure", "took": 0.0, "requestId": str(uuid.uuid4())}
            return self._finish(rec, self._failure_response(failure, body)), None
        if not self._authorized(rec):
            self._violate(rec, ["Authorization must be 'GenieKey <api key>' with a known key"])
            body = {
                "message": "Could not authenticate",
                "took": 0.0,
                "requestId": str(uuid.uuid4()),
            }
            return self._finish(rec, JSONResponse(body, status_code=401)), None
        if not rec.headers.get("content-type", "").startswith("application/json"):
            self._violate(rec, ["Content-Type must be application/json"])
        return None, failure

    def _unprocessable(self, rec: Recorded, problems: dict[str, str]) -> JSONResponse:
        self._violate(rec, [f"{k}: {v}" for k, v in problems.items()])
        body = {
            "message": "Request body is not processable. Please check the errors.",
            "errors": problems,
            "took": 0.0,
            "requestId": str(uuid.uuid4()),
        }
        return self._finish(rec, JSONResponse(body, status_code=422))

    async def _create(self, request: Request) -> Response:
        rec = await self._record(request)
        refused, failure = self._gate(rec)
        if refused is not None:
            return refused
        problems = self.check_create(rec.json)
        if problems:
            return self._unprocessable(rec, problems)
        body: dict[str, Any] = rec.json
        alias = str(body.get("alias") or uuid.uuid4())
        with self._lock:
            open_alert = next(
                (a for a in self.alerts if a.alias == alias and a.status == "open"), None
            )
            if open_alert is not None:
                open_alert.count += 1  # de-duplicated: responders are not added
            else:
                self.alerts.append(
                    OpsgenieAlert(
                        id=str(uuid.uuid4()),
                        tiny_id=str(len(self.alerts) + 1),
                        alias=alias,
                        message=body["message"],
                        priority=body.get("priority", "P3"),
                        responders=list(body.get("responders") or []),
                    )
                )
        if failure is not None:
            return self._finish(rec, self._failure_response(failure, {"message": "injected"}))
        return self._accepted(rec)

    async def _act(self, request: Request) -> Response:
        rec = await self._record(request)
        refused, failure = self._gate(rec)
        if refused is not None:
            return refused
        action = request.path_params["action"]
        identifier = request.path_params["identifier"]
        kind = rec.query.get("identifierType", "id")
        problems: dict[str, str] = {}
        if action not in ("acknowledge", "close", "responders"):
            self._violate(rec, [f"no such action {action!r}"])
            return self._finish(rec, JSONResponse({"message": "not found"}, status_code=404))
        if kind not in OG_IDENTIFIER_TYPES:
            problems["identifierType"] = "must be id, alias or tiny"
        body = rec.json if rec.body else {}
        if not isinstance(body, dict):
            problems["body"] = "must be a JSON object"
            body = {}
        allowed = {"user", "source", "note"} | ({"responder"} if action == "responders" else set())
        for name in sorted(set(body) - allowed):
            problems[name] = "unknown field"
        for name, limit in (("user", 100), ("source", 100), ("note", 25_000)):
            if name in body:
                found: list[str] = []
                _string(body[name], name, limit, found)
                if found:
                    problems[name] = found[0]
        if action == "responders":
            found = []
            if "responder" not in body:
                found.append("responder is required")
            else:
                self._check_responder(body["responder"], "responder", found)
            if found:
                problems["responder"] = "; ".join(found)
        if problems:
            return self._unprocessable(rec, problems)
        with self._lock:
            attr = {"id": "id", "alias": "alias", "tiny": "tiny_id"}[kind]
            matches = [a for a in self.alerts if getattr(a, attr) == identifier]
            alert = matches[-1] if matches else None
            response = self._accepted(rec)
            request_id = str(rec.answer["requestId"])
            if alert is None:
                self.failed_requests.append((request_id, "Alert does not exist"))
            elif action == "acknowledge":
                alert.acknowledged = True
            elif action == "close":
                alert.status = "closed"
            else:
                alert.responders.append(dict(body["responder"]))
            if "note" in body and alert is not None:
                alert.notes.append(str(body["note"]))
        if failure is not None:
            return self._finish(rec, self._failure_response(failure, {"message": "injected"}))
        return response


# -- the generic paging webhook ---------------------------------------------------------------

_SIGNATURE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")


class WebhookReceiver(_Standin):
    """A receiver of the bot's paging webhook at ``{url}`` that checks its signature."""

    name = "webhook receiver"

    def __init__(self, secret: str | None = "page-secret", max_age_s: float = 300.0) -> None:
        super().__init__()
        self.secret = secret
        self.max_age_s = max_age_s
        self.received: list[dict[str, Any]] = []

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    @property
    def url(self) -> str:
        return f"{self.base_url}/page"

    def _routes(self) -> list[Route]:
        return [Route("/page", self._page, methods=["POST"])]

    def verify(self, headers: dict[str, str], body: bytes) -> str | None:
        """Return why the signature is not acceptable, or None when it is."""
        if self.secret is None:
            return None
        found = _SIGNATURE.match(headers.get("x-ai-incident-signature", ""))
        if found is None:
            return "X-AI-Incident-Signature is missing or not t=<unix>,v1=<hex>"
        stamp, given = int(found.group(1)), found.group(2)
        expected = hmac.new(
            self.secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, given):
            return "the signature does not match the body"
        if abs(time.time() - stamp) > self.max_age_s:
            return "the signature is older than five minutes"
        return None

    async def _page(self, request: Request) -> Response:
        rec = await self._record(request)
        failure = self._injected()
        if failure is not None and not failure.effect:
            return self._finish(rec, self._failure_response(failure, {"error": "injected"}))
        why = self.verify(rec.headers, rec.body)
        if why is not None:
            self._violate(rec, [why])
            return self._finish(rec, JSONResponse({"error": why}, status_code=401))
        if not isinstance(rec.json, dict):
            self._violate(rec, ["the body must be a JSON object"])
            return self._finish(rec, JSONResponse({"error": "not JSON"}, status_code=400))
        with self._lock:
            self.received.append(rec.json)
        if failure is not None:
            return self._finish(rec, self._failure_response(failure, {"error": "injected"}))
        return self._finish(rec, JSONResponse({"ok": True}, status_code=200))
