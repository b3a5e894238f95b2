"""OpenFeature Remote Evaluation Protocol (OFREP) for the kill switches (§9).

Agents read `workflow.<name>.enabled` with any OpenFeature SDK and the OFREP provider. Answers
follow the OFREP OpenAPI (github.com/open-feature/protocol): a success carries key, value,
reason, variant, metadata and `cacheable: false`; an unknown flag is a 404 with
`errorCode: FLAG_NOT_FOUND`; a body that is not JSON, or nests deeper than the webhooks allow,
is a 400 with `errorCode: PARSE_ERROR` (the protocol's answer to a body it cannot read).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bot.config import Policy
from bot.domain.killswitch import evaluation, flag_key, workflow_of_flag
from bot.services.killswitch import KillSwitchService
from handlers.auth import Scope, Unauthorized, authenticate
from handlers.webhooks import _read_body, _TooLarge, nesting_problem
from storage.db import readonly

__all__ = ["OfrepDeps", "build_ofrep_router"]

NO_STORE = {"Cache-Control": "no-store"}


class OfrepDeps:
    """What the OFREP routes need, handed over by the composition root."""

    def __init__(
        self,
        *,
        engine: Engine,
        policy: Policy,
        killswitch: KillSwitchService,
        global_token: str | None,
        max_body_bytes: int,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.killswitch = killswitch
        self.global_token = global_token
        self.max_body_bytes = max_body_bytes


def _failure(status: int, error_code: str, details: str, key: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"errorCode": error_code, "errorDetails": details}
    if key is not None:
        body = {"key": key, **body}
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def _context_error(body: bytes) -> str | None:
    """Return why the body is not an evaluation request, or None when it is one."""
    if not body.strip():
        return None
    if (problem := nesting_problem(body)) is not None:
        return f"body is {problem}"
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"body is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return "body must be a JSON object"
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        return "context must be an object"
    return None


def build_ofrep_router(deps: OfrepDeps) -> APIRouter:
    """Return the router for /ofrep/v1/evaluate/flags[/{key}] and /ofrep/v1/configuration."""
    router = APIRouter(prefix="/ofrep/v1", tags=["kill switch (OFREP)"])

    async def _read(session_work: Callable[[Session], Any]) -> Any:
        def work() -> Any:
            with Session(readonly(deps.engine)) as session:
                return session_work(session)

        return await asyncio.to_thread(work)

    async def _guard(request: Request, key: str | None) -> tuple[bytes | None, Response | None]:
        try:
            body = await _read_body(request, deps.max_body_bytes)
        except _TooLarge:
            return None, _failure(
                413, "GENERAL", f"body larger than {deps.max_body_bytes} bytes", key
            )
        try:
            authenticate(
                scope=Scope.FLAGS,
                headers=request.headers,
                body=body,
                policy=deps.policy,
                global_token=deps.global_token,
                source_hint=request.query_params.get("source"),
            )
        except Unauthorized as exc:
            return None, JSONResponse({"errorDetails": str(exc)}, status_code=401)
        problem = _context_error(body)
        if problem is not None:
            code = "PARSE_ERROR" if "JSON" in problem else "INVALID_CONTEXT"
            return None, _failure(400, code, problem, key)
        return body, None

    responses: dict[int | str, dict[str, Any]] = {
        400: {"description": "body is not an evaluation request (PARSE_ERROR, INVALID_CONTEXT)"},
        401: {
            "description": "bad or missing auth: the global webhook token, or an agent "
            "source's token or X-AI-Incident-Signature"
        },
        404: {"description": "no such flag (FLAG_NOT_FOUND)"},
        503: {"description": "storage unavailable; retry"},
    }

    @router.post("/evaluate/flags/{key}", responses=responses)
    async def evaluate_flag(key: str, request: Request) -> Response:
        """Evaluate one kill-switch flag, `workflow.<name>.enabled` (boolean)."""
        _, refused = await _guard(request, key)
        if refused is not None:
            return refused
        workflow = workflow_of_flag(key)
        if workflow is None or workflow not in deps.killswitch.known():
            return _failure(
                404,
                "FLAG_NOT_FOUND",
                f"no flag {key!r}; flags are {flag_key('<workflow>')} for the workflows "
                "of the policy file",
                key,
            )
        try:
            state = await _read(lambda s: deps.killswitch.state(s, workflow))
        except OperationalError:
            return _failure(503, "GENERAL", "storage unavailable, retry later", key)
        return JSONResponse(evaluation(state), headers=NO_STORE)

    @router.post("/evaluate/flags", responses={**responses, 304: {"description": "unchanged"}})
    async def evaluate_flags(request: Request) -> Response:
        """Evaluate every kill-switch flag at once; ETag and If-None-Match are honoured."""
        _, refused = await _guard(request, None)
        if refused is not None:
            return refused
        try:
            states = await _read(deps.killswitch.states)
        except OperationalError:
            return _failure(503, "GENERAL", "storage unavailable, retry later")
        payload = {"flags": [evaluation(s) for s in states]}
        raw = json.dumps(payload, sort_keys=True, default=str).encode()
        etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
        if etag in wanted:
            return Response(status_code=304, headers={"ETag": etag, **NO_STORE})
        return JSONResponse(payload, headers={"ETag": etag, **NO_STORE})

    @router.get("/configuration")
    async def configuration(request: Request) -> Response:
        """Describe this flag service to OFREP providers that ask."""
        _, refused = await _guard(request, None)
        if refused is not None:
            return refused
        return JSONResponse(
            {
                "name": "ai-incident-bot",
                "capabilities": {
                    "flagEvaluation": {"supportedTypes": ["boolean"]},
                    # a paused workflow must stop at the next evaluation: nothing is cached
                    "caching": {"enabled": False},
                    "cacheInvalidation": {"polling": {"enabled": False}},
                },
            },
            headers=NO_STORE,
        )

    return router
