"""Handoff routes: `POST /webhooks/handoffs` for agents, `GET /handoffs/{id}` for polling.

(No postponed annotations: the routes' dependencies are read off their annotations.)
"""

import asyncio
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bot.config import Policy, Source
from bot.handoffs.domain import Decision, HandoffView, InvalidHandoffId, parse_handoff_id
from bot.handoffs.runner import HandoffRunner
from bot.integrations.callback_targets import (
    CallbackGuard,
    HostNotFound,
    RefusedTarget,
    ResolutionFailed,
)
from bot.metrics import Metrics
from handlers.auth import Caller, Scope
from handlers.errors import BadBody, Conflict, NotFound, Unavailable
from handlers.gate import TokenGate
from handlers.handoff_schema import HandoffBody
from handlers.openapi import json_body

__all__ = ["HandoffDeps", "build_handoff_router"]


class HandoffDeps:
    """What the handoff routes need, handed over by the composition root."""

    def __init__(
        self,
        *,
        policy: Policy,
        global_token: str | None,
        runner: HandoffRunner,
        metrics: Metrics,
        max_body_bytes: int,
        callback_guard: CallbackGuard,
    ) -> None:
        self.policy = policy
        self.global_token = global_token
        self.runner = runner
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.callback_guard = callback_guard


class HandoffAccepted(BaseModel):
    """The answer to a handoff: its id, tier and status."""

    handoff_id: str
    tier: Literal["auto", "review", "human"]
    status: str


class SlaOut(BaseModel):
    claim_by: datetime | None
    decide_by: datetime | None


class CallbackOut(BaseModel):
    url: str | None
    delivered_at: datetime | None


class HandoffState(BaseModel):
    """A handoff as an agent polls it."""

    handoff_id: str
    idempotency_key: str
    workflow: str
    tier: Literal["auto", "review", "human"]
    tier_reason: str
    status: str
    handoff_reason: str
    confidence: float | None
    claimed_by: str | None
    lease_until: datetime | None
    decision: Literal["approved", "edited", "rejected"] | None
    output: str | None
    edited_output: str | None
    reason: str | None
    decided_by: str | None
    received_at: datetime
    claimed_at: datetime | None
    decided_at: datetime | None
    sla: SlaOut
    callback: CallbackOut


def _state(view: HandoffView) -> HandoffState:
    output = None
    if view.decision is Decision.APPROVED:
        output = view.attempted_response
    elif view.decision is Decision.EDITED:
        output = view.edited_output
    return HandoffState(
        handoff_id=view.public_id,
        idempotency_key=view.idempotency_key,
        workflow=view.workflow,
        tier=view.tier.value,
        tier_reason=view.tier_reason,
        status=view.status.value,
        handoff_reason=view.reason,
        confidence=view.confidence,
        claimed_by=view.claimed_by,
        lease_until=view.lease_until,
        decision=view.decision.value if view.decision is not None else None,
        output=output,
        edited_output=view.edited_output,
        reason=view.reject_reason,
        decided_by=view.decided_by,
        received_at=view.received_at,
        claimed_at=view.claimed_at,
        decided_at=view.decided_at,
        sla=SlaOut(claim_by=view.claim_due_at, decide_by=view.decide_due_at),
        callback=CallbackOut(
            url=_without_credentials(view.callback_url), delivered_at=view.callback_delivered_at
        ),
    )


def _without_credentials(url: str | None) -> str | None:
    """Return a callback URL without its user:password and with its query values hidden."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    query = urlencode([(key, "redacted") for key, _ in parse_qsl(parts.query, True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def build_handoff_router(deps: HandoffDeps) -> APIRouter:
    """Return the router for POST /webhooks/handoffs and GET /handoffs/{handoff_id}."""
    router = APIRouter(tags=["handoffs"])
    received = deps.metrics.handoffs
    gate = TokenGate(
        max_body_bytes=deps.max_body_bytes, policy=deps.policy, global_token=deps.global_token
    )

    async def receive(
        caller: Annotated[Caller, Depends(gate.caller(Scope.HANDOFFS))],
        payload: Annotated[HandoffBody, Depends(gate.parsed(HandoffBody))],
    ) -> JSONResponse:
        source_name = caller.source
        if payload.callback_url is not None:
            try:
                await deps.callback_guard.vet_soon(payload.callback_url, source=source_name)
            except (RefusedTarget, HostNotFound) as exc:
                raise BadBody.field("callback_url", str(exc)) from None
            except ResolutionFailed as exc:
                raise Unavailable(
                    f"cannot check callback_url just now, retry later: {exc}", retry_after=30
                ) from None
        source = deps.policy.sources.get(source_name) or Source()
        handoff = payload.to_domain(
            default_workflow=source.default_workflow or deps.policy.default_workflow
        )
        # StorageUnavailable is answered 503 by the app
        outcome = await asyncio.to_thread(deps.runner.receive, handoff, source=source_name)
        if outcome.duplicate and not caller.owns(outcome.source):
            # the key names another source's handoff: say nothing about it
            raise Conflict(
                "idempotency_key is already used by another sender; "
                "use keys unique to this agent (e.g. prefixed with its name)"
            )
        received.labels(outcome.tier, "duplicate" if outcome.duplicate else "new").inc()
        answer = HandoffAccepted(
            handoff_id=outcome.handoff_id,
            tier=outcome.tier,
            status=outcome.status,
        )
        return JSONResponse(answer.model_dump(), status_code=200 if outcome.duplicate else 202)

    router.add_api_route(
        "/webhooks/handoffs",
        receive,
        methods=["POST"],
        status_code=202,
        response_model=HandoffAccepted,
        summary="Hand work to a human reviewer (§8)",
        description=(
            "Idempotent on `idempotency_key`: a retry answers 200 with the same handoff. "
            "Auth: the global webhook token, or an agent source's (`kind: agent`) own "
            "`Authorization: Bearer <token>` or `X-AI-Incident-Signature: t=<unix>,"
            'v1=<hex hmac-sha256 of "t.body">` with its `hmac_secret`.'
        ),
        responses={
            200: {"description": "a retry of a handoff already stored", "model": HandoffAccepted},
            401: {
                "description": "bad or missing auth, a stale signature, or a credential of a "
                "source that is no agent; nothing stored"
            },
            409: {"description": "the idempotency_key is another source's; nothing stored"},
            413: {"description": "body over the size limit"},
            422: {
                "description": "invalid body, or a `callback_url` the callback policy refuses; "
                "`fields` names each bad field"
            },
            503: {"description": "storage unavailable, or DNS did not answer; retry"},
        },
        openapi_extra=json_body(HandoffBody),
    )

    async def status(
        handoff_id: str, caller: Annotated[Caller, Depends(gate.caller(Scope.HANDOFF_READ))]
    ) -> JSONResponse:
        try:
            number = parse_handoff_id(handoff_id)
        except InvalidHandoffId:
            raise NotFound(f"no handoff {handoff_id!r}; ids look like HO-7") from None
        # a database that does not answer is a 503, by the app
        view = await asyncio.to_thread(deps.runner.view, number)
        # another source's handoff is answered exactly like one that does not exist
        if view is None or not caller.owns(view.source):
            raise NotFound(f"no handoff {handoff_id}")
        return JSONResponse(_state(view).model_dump(mode="json"))

    router.add_api_route(
        "/handoffs/{handoff_id}",
        status,
        methods=["GET"],
        response_model=HandoffState,
        summary="A handoff's status and decision, for agents that poll",
        description=(
            "Auth: the global webhook token reads every handoff; an agent source's `token` (or "
            "`X-AI-Incident-Signature` over the empty body) reads its own handoffs only. Another "
            "source's handoff is a 404, like one that does not exist. The callback URL is shown "
            "without user, password or query values."
        ),
        responses={
            401: {"description": "bad or missing auth"},
            404: {"description": "no such handoff, or another source's"},
            503: {"description": "storage unavailable; retry"},
        },
    )
    return router
