"""Alert webhook routes: size limit, auth, validation, durable ingest.

(No postponed annotations: the routes' dependencies are read off their annotations.)
"""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as Scope_

from bot.config import Policy, Source
from bot.domain.alerts import Notification
from bot.metrics import Metrics
from bot.services.ingest import IngestPipeline
from handlers.auth import Caller, Scope
from handlers.gate import TokenGate
from handlers.openapi import json_body
from handlers.schemas import AlertmanagerPayload, GenericAlert, from_alertmanager, from_generic

__all__ = ["ENDPOINTS", "Refused", "WebhookDeps", "WebhookMetrics", "build_router"]


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


def build_router(deps: WebhookDeps) -> APIRouter:
    """Return the router for /webhooks/alertmanager and /webhooks/alerts."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    gate = TokenGate(
        max_body_bytes=deps.max_body_bytes, policy=deps.policy, global_token=deps.global_token
    )

    async def ingest(endpoint: str, notification: Notification) -> JSONResponse:
        outcome = await deps.pipeline.submit(notification)
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
    async def alertmanager(
        caller: Annotated[Caller, Depends(gate.caller(Scope.ALERTS))],
        payload: Annotated[AlertmanagerPayload, Depends(gate.parsed(AlertmanagerPayload))],
    ) -> JSONResponse:
        """Accept an Alertmanager v4 or Grafana unified-alerting notification."""
        source = deps.policy.sources.get(caller.source) or Source()
        return await ingest(
            "alertmanager", from_alertmanager(payload, source_name=caller.source, source=source)
        )

    @router.post(
        "/alerts",
        status_code=202,
        response_model=Accepted,
        openapi_extra=json_body(GenericAlert),
        **openapi_auth,
    )
    async def generic(
        caller: Annotated[Caller, Depends(gate.caller(Scope.ALERTS))],
        payload: Annotated[GenericAlert, Depends(gate.parsed(GenericAlert))],
    ) -> JSONResponse:
        """Accept a generic alert (§4)."""
        source = deps.policy.sources.get(caller.source) or Source()
        return await ingest(
            "alerts", from_generic(payload, source_name=caller.source, source=source)
        )

    return router


ENDPOINTS = {
    "/webhooks/alertmanager": "alertmanager",
    "/webhooks/alerts": "alerts",
    "/webhooks/runs": "runs",
    "/v1/metrics": "otlp_metrics",
}


class WebhookMetrics:
    """Count each alert webhook request by the status it was answered with, and time it.

    Middleware, not part of the route: a refusal (401, 413, 422, 503) is answered by the app's
    exception handlers after the route has given up, and is counted all the same.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        endpoint = ENDPOINTS.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.ingest_latency.labels(endpoint).observe(time.perf_counter() - started)
