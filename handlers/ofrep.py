"""OpenFeature Remote Evaluation Protocol (OFREP) for the kill switches (§9).

Agents read `workflow.<name>.enabled` with any OpenFeature SDK and the OFREP provider. Answers
follow the OFREP OpenAPI (github.com/open-feature/protocol): a success carries key, value,
reason, variant, metadata and `cacheable: false`; an unknown flag is a 404 with
`errorCode: FLAG_NOT_FOUND`; a body that is not JSON, or nests deeper than the webhooks allow,
is a 400 with `errorCode: PARSE_ERROR` (the protocol's answer to a body it cannot read).
Refusals are raised and answered by the app's handlers in the protocol's shape (`ofrep_answer`).

(No postponed annotations: the routes' dependencies are read off their annotations.)
"""

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy
from bot.domain.killswitch import evaluation, flag_key, workflow_of_flag
from bot.services.killswitch import KillSwitchService
from handlers.auth import Caller, Scope
from handlers.errors import BadRequest, NotFound, answers_in
from handlers.gate import TokenGate, nesting_problem
from storage.db import readonly

__all__ = ["OfrepDeps", "build_ofrep_router", "ofrep_answer"]

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


def ofrep_answer(
    request: Request, status: int, message: str, code: str, _extra: dict[str, Any]
) -> Response:
    """Answer a refusal as OFREP does: `errorCode` and `errorDetails`, the flag's `key` if any."""
    if status == 401:
        return JSONResponse({"errorDetails": message}, status_code=401)
    body: dict[str, Any] = {"errorCode": code, "errorDetails": message}
    key = request.path_params.get("key")
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
    gate = TokenGate(
        max_body_bytes=deps.max_body_bytes, policy=deps.policy, global_token=deps.global_token
    )
    router = APIRouter(
        prefix="/ofrep/v1",
        tags=["kill switch (OFREP)"],
        # the first dependency, so that even a refused size or credential answers in OFREP's shape
        dependencies=[Depends(answers_in(ofrep_answer))],
    )

    async def _read(session_work: Callable[[Session], Any]) -> Any:
        def work() -> Any:
            with Session(readonly(deps.engine)) as session:
                return session_work(session)

        # a database that does not answer is a 503, by the app
        return await asyncio.to_thread(work)

    async def evaluation_request(
        _caller: Annotated[Caller, Depends(gate.caller(Scope.FLAGS))],
        body: Annotated[bytes, Depends(gate.body)],
    ) -> None:
        """Accept only a body that is an evaluation request (after the size limit and auth)."""
        problem = _context_error(body)
        if problem is not None:
            raise BadRequest(
                problem, code="PARSE_ERROR" if "JSON" in problem else "INVALID_CONTEXT"
            )

    guarded = [Depends(evaluation_request)]

    responses: dict[int | str, dict[str, Any]] = {
        400: {"description": "body is not an evaluation request (PARSE_ERROR, INVALID_CONTEXT)"},
        401: {
            "description": "bad or missing auth: the global webhook token, or an agent "
            "source's token or X-AI-Incident-Signature"
        },
        404: {"description": "no such flag (FLAG_NOT_FOUND)"},
        503: {"description": "storage unavailable; retry"},
    }

    @router.post("/evaluate/flags/{key}", responses=responses, dependencies=guarded)
    async def evaluate_flag(key: str) -> Response:
        """Evaluate one kill-switch flag, `workflow.<name>.enabled` (boolean)."""
        workflow = workflow_of_flag(key)
        if workflow is None or workflow not in deps.killswitch.known():
            raise NotFound(
                f"no flag {key!r}; flags are {flag_key('<workflow>')} for the workflows "
                "of the policy file",
                code="FLAG_NOT_FOUND",
            )
        state = await _read(lambda s: deps.killswitch.state(s, workflow))
        return JSONResponse(evaluation(state), headers=NO_STORE)

    @router.post(
        "/evaluate/flags",
        responses={**responses, 304: {"description": "unchanged"}},
        dependencies=guarded,
    )
    async def evaluate_flags(request: Request) -> Response:
        """Evaluate every kill-switch flag at once; ETag and If-None-Match are honoured."""
        states = await _read(deps.killswitch.states)
        payload = {"flags": [evaluation(s) for s in states]}
        raw = json.dumps(payload, sort_keys=True, default=str).encode()
        etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
        if etag in wanted:
            return Response(status_code=304, headers={"ETag": etag, **NO_STORE})
        return JSONResponse(payload, headers={"ETag": etag, **NO_STORE})

    @router.get("/configuration", dependencies=guarded)
    async def configuration() -> Response:
        """Describe this flag service to OFREP providers that ask."""
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
