"""Alert webhook routes: size limit, auth, validation, durable ingest."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from bot.config import Policy, Source
from bot.domain.alerts import Notification
from bot.metrics import Metrics
from bot.services.ingest import IngestPipeline
from handlers.auth import Scope, Unauthorized, authenticate
from handlers.openapi import json_body
from handlers.schemas import AlertmanagerPayload, GenericAlert, from_alertmanager, from_generic
from handlers.storage_errors import storage_unavailable
from storage.db import StorageUnavailable

__all__ = [
    "MAX_DEPTH",
    "Refused",
    "WebhookDeps",
    "build_router",
    "nesting_problem",
    "parse_body",
]

M = TypeVar("M", bound=BaseModel)


class WebhookDeps:
    """What the webhook routes need, handed over by the composition root."""

    def __init__(
        self,
        *,
        policy: Policy,
        global_token: str | None,
        pipeline: IngestPipeline,
        metrics: Metrics,
        max_body_bytes: int,
    ) -> None:
        self.policy = policy
        self.global_token = global_token
        self.pipeline = pipeline
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes


class Accepted(BaseModel):
    """The answer to an accepted notification."""

    status: str
    incident: str | None
    opened: bool
    duplicate: bool
    alerts_new: int
    alerts_changed: int
    resolved: bool


class FieldError(BaseModel):
    """One field a body got wrong, by its dotted path."""

    field: str
    message: str


class Refused(BaseModel):
    """The answer to a refused request: a sentence saying why, and for a 422 each bad field."""

    error: str
    fields: list[FieldError] | None = None


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class _TooLarge(Exception):
    """The body is over the size limit."""


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _without_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; an alert must never be refused for one stray byte
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


MAX_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# brackets become +1/-1 as signed bytes; everything else outside strings is dropped
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def nesting_problem(body: bytes, limit: int = MAX_DEPTH) -> str | None:
    """Say why a JSON body nests too deeply to parse, or return None; scans without parsing.

    Parsers recurse once per level, so a body of 1 MiB of brackets would exhaust the stack;
    no sender nests anywhere near `limit` levels.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return None
    steps = _JSON_STRING.sub(b"", body).translate(_DEPTH_STEPS, _NOT_BRACKETS)
    if max(accumulate(memoryview(steps).cast("b")), default=0) > limit:
        return f"JSON nested deeper than {limit} levels"
    return None


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors()
    ]


def parse_body(model: type[M], body: bytes) -> M | JSONResponse:
    """Validate a JSON body; a 422 naming the first bad field (and listing all) when invalid."""
    if (problem := nesting_problem(body)) is not None:
        return _error(422, f"body is {problem}", fields=[{"field": "(body)", "message": problem}])
    try:
        if b"\\u0000" in body:
            return model.model_validate(_without_nul(json.loads(body)))
        return model.model_validate_json(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(
            422, "body is not valid JSON", fields=[{"field": "(body)", "message": str(exc)}]
        )
    except ValidationError as exc:
        fields = _field_errors(exc)
        return _error(
            422, f"invalid field {fields[0]['field']}: {fields[0]['message']}", fields=fields
        )


def build_router(deps: WebhookDeps) -> APIRouter:
    """Return the router for /webhooks/alertmanager and /webhooks/alerts."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])

    async def handle(
        request: Request,
        endpoint: str,
        model: type[BaseModel],
        translate: Callable[[Any, str, Source], Notification],
    ) -> JSONResponse:
        started = time.perf_counter()
        response = await _handle(request, endpoint, model, translate)
        deps.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        deps.metrics.ingest_latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def _handle(
        request: Request,
        endpoint: str,
        model: type[BaseModel],
        translate: Callable[[Any, str, Source], Notification],
    ) -> JSONResponse:
        try:
            body = await _read_body(request, deps.max_body_bytes)
        except _TooLarge:
            return _error(413, f"body larger than {deps.max_body_bytes} bytes")
        try:
            source_name = authenticate(
                scope=Scope.ALERTS,
                headers=request.headers,
                body=body,
                policy=deps.policy,
                global_token=deps.global_token,
                source_hint=request.query_params.get("source"),
            ).source
        except Unauthorized as exc:
            return _error(401, str(exc))
        payload = parse_body(model, body)
        if isinstance(payload, JSONResponse):
            return payload
        source = deps.policy.sources.get(source_name) or Source()
        notification = translate(payload, source_name, source)
        try:
            outcome = await deps.pipeline.submit(notification)
        except StorageUnavailable as exc:
            return storage_unavailable(exc, endpoint=f"/webhooks/{endpoint}")
        if outcome.duplicate:
            deps.metrics.alerts.labels(endpoint, "duplicate").inc(len(notification.alerts))
        else:
            deps.metrics.alerts.labels(endpoint, "new").inc(outcome.alerts_new)
            deps.metrics.alerts.labels(endpoint, "changed").inc(outcome.alerts_changed)
        if outcome.opened:
            deps.metrics.incidents_opened.inc()
        answer = Accepted(
            status="duplicate" if outcome.duplicate else "accepted",
            incident=outcome.public_id,
            opened=outcome.opened,
            duplicate=outcome.duplicate,
            alerts_new=outcome.alerts_new,
            alerts_changed=outcome.alerts_changed,
            resolved=outcome.resolved,
        )
        return JSONResponse(answer.model_dump(), status_code=202 if not outcome.duplicate else 200)

    openapi_auth: dict[str, Any] = {
        "responses": {
            200: {"description": "a repeat of a notification already stored", "model": Accepted},
            401: {"description": "bad or missing auth; nothing stored", "model": Refused},
            413: {"description": "body over the size limit", "model": Refused},
            422: {"description": "invalid body; `fields` names each bad field", "model": Refused},
            503: {"description": "storage unavailable; retry", "model": Refused},
        }
    }

    @router.post(
        "/alertmanager",
        status_code=202,
        response_model=Accepted,
        openapi_extra=json_body(AlertmanagerPayload),
        **openapi_auth,
    )
    async def alertmanager(request: Request) -> JSONResponse:
        """Accept an Alertmanager v4 or Grafana unified-alerting notification."""
        return await handle(
            request,
            "alertmanager",
            AlertmanagerPayload,
            lambda p, name, src: from_alertmanager(p, source_name=name, source=src),
        )

    @router.post(
        "/alerts",
        status_code=202,
        response_model=Accepted,
        openapi_extra=json_body(GenericAlert),
        **openapi_auth,
    )
    async def generic(request: Request) -> JSONResponse:
        """Accept a generic alert (§4)."""
        return await handle(
            request,
            "alerts",
            GenericAlert,
            lambda p, name, src: from_generic(p, source_name=name, source=src),
        )

    return router
