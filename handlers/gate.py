"""The prologue of every webhook route as FastAPI dependencies: size limit, auth, parsing.

A route declares what it needs, in this order, and the dependencies run in it:

    body: Annotated[bytes, Depends(gate.body)]                  # 413 before a byte is parsed
    caller: Annotated[Caller, Depends(gate.caller(Scope.X))]    # 401, constant-time compare
                                                                # (or `gate.jira`, `gate.slack`)
    payload: Annotated[Model, Depends(gate.parsed(Model))]      # 422 naming the field

The body is read once per request (FastAPI caches a dependency within a request) and the
refusals are typed errors that `handlers.errors` answers. (No postponed annotations here: FastAPI
reads the dependencies off the annotations, and they name `self`.)
"""

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from bot.config import Policy
from handlers.auth import Caller, Scope, authenticate, authenticate_jira, verify_slack
from handlers.errors import BadBody, TooLarge

__all__ = [
    "MAX_DEPTH",
    "Gate",
    "TokenGate",
    "nesting_problem",
    "parse_body",
    "read_body",
    "without_nul",
]

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (TooLarge) as soon as it is over `limit` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def without_nul(value: Any) -> Any:
    """Return JSON data with every NUL in its text replaced (PostgreSQL text cannot hold one)."""
    # PostgreSQL text cannot hold NUL; an alert must never be refused for one stray byte
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
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


def parse_body(model: type[M], body: bytes) -> M:
    """Validate a JSON body; BadBody naming the first bad field (and listing all) when invalid."""
    if (problem := nesting_problem(body)) is not None:
        raise BadBody(f"body is {problem}", [{"field": "(body)", "message": problem}])
    try:
        if b"\\u0000" in body:
            return model.model_validate(without_nul(json.loads(body)))
        return model.model_validate_json(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(
            "body is not valid JSON", [{"field": "(body)", "message": str(exc)}]
        ) from None
    except ValidationError as exc:
        fields = _field_errors(exc)
        raise BadBody(
            f"invalid field {fields[0]['field']}: {fields[0]['message']}", fields
        ) from None


@dataclass(frozen=True, eq=False)
class Gate:
    """The dependencies of a route that reads a body: the size limit, parsing, signatures."""

    max_body_bytes: int

    async def body(self, request: Request) -> bytes:
        """The body, read within the size limit."""
        return await read_body(request, self.max_body_bytes)

    def parsed(self, model: type[M]) -> Callable[..., Awaitable[M]]:
        """Return the dependency that validates the body as `model`."""

        async def parsed(body: Annotated[bytes, Depends(self.body)]) -> M:
            return parse_body(model, body)

        return parsed

    def jira(self, secret: str | None) -> Callable[..., Awaitable[None]]:
        """Return the dependency that accepts only Jira's signature or secret."""

        async def jira(request: Request, body: Annotated[bytes, Depends(self.body)]) -> None:
            authenticate_jira(
                headers=request.headers, query=request.query_params, body=body, secret=secret
            )

        return jira

    def slack(self, signing_secret: str) -> Callable[..., Awaitable[bytes]]:
        """Return the dependency that verifies Slack's signature; it yields the verified body."""

        async def slack(request: Request, body: Annotated[bytes, Depends(self.body)]) -> bytes:
            verify_slack(signing_secret=signing_secret, headers=request.headers, body=body)
            return body

        return slack


@dataclass(frozen=True, eq=False)
class TokenGate(Gate):
    """A gate for routes opened by the webhook token or a source's own credential."""

    policy: Policy
    global_token: str | None

    def caller(self, scope: Scope) -> Callable[..., Awaitable[Caller]]:
        """Return the dependency that authenticates a request for `scope`: who sent it."""

        async def caller(request: Request, body: Annotated[bytes, Depends(self.body)]) -> Caller:
            return authenticate(
                scope=scope,
                headers=request.headers,
                body=body,
                policy=self.policy,
                global_token=self.global_token,
                source_hint=request.query_params.get("source"),
            )

        return caller
