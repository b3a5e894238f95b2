"""`POST /webhooks/runs`: AI workflow runs from scripts and no-code tools, kept as history.

One run (a JSON object), or `{"runs": [...]}` with up to 1,000. Each run is checked on its own:
a bad run is answered 422 in the list of problems and the others are kept (partial success);
only when no run can be kept is the whole request 422. A repeated `run_id` changes nothing.
(No postponed annotations: the route's dependencies are read off its annotations.)
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from bot.config import Policy
from bot.domain.watch.history import Run, RunStatus
from bot.metrics import Metrics
from bot.services.watch_intake import RunIntake
from handlers.auth import Caller, Scope
from handlers.errors import BadBody
from handlers.gate import TokenGate, nesting_problem, without_nul
from handlers.openapi import json_body

__all__ = ["MAX_RUNS", "RunIn", "RunsDeps", "build_runs_router"]

MAX_RUNS = 1000
_TEXT = 200


class _RunFields(BaseModel):
    # the fields of a run, checked in pydantic's core alone: the body of a well-formed request
    # (statuses in lower case) is parsed without one Python call per run

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    workflow: str = Field(min_length=1, max_length=_TEXT, description="The workflow's name.")
    run_id: str = Field(
        min_length=1, max_length=_TEXT, description="Unique per workflow: a repeat is ignored."
    )
    at: datetime | None = Field(
        default=None,
        description="When the run finished: ISO 8601 (no zone = UTC) or unix seconds; default now.",
    )
    status: RunStatus = RunStatus.OK
    latency_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    tokens_in: int | None = Field(default=None, ge=0, le=10**12)
    tokens_out: int | None = Field(default=None, ge=0, le=10**12)
    cost_usd: float | None = Field(default=None, ge=0, le=10**9, allow_inf_nan=False)
    confidence: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    handed_off: bool = False
    model: str | None = Field(default=None, max_length=_TEXT)
    prompt_version: str | None = Field(default=None, max_length=_TEXT)
    error: str | None = Field(default=None, max_length=10_000)

    def run(self, now: datetime) -> Run:
        """Return the domain run, `at` defaulting to `now` and naive times read as UTC."""
        at = self.at or now
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return Run(
            workflow=self.workflow,
            run_id=self.run_id,
            at=at.astimezone(UTC),
            status=self.status,
            latency_ms=self.latency_ms,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost_usd=self.cost_usd,
            confidence=self.confidence,
            handed_off=self.handed_off,
            model=self.model or None,
            prompt_version=self.prompt_version or None,
            error=self.error or None,
        )


class RunIn(_RunFields):
    """One run of an AI workflow, as a script or a no-code tool reports it."""

    @field_validator("status", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class RunsIn(BaseModel):
    """A batch of runs."""

    runs: list[RunIn] = Field(min_length=1, max_length=MAX_RUNS)


class _FastRuns(BaseModel):
    runs: list[_RunFields] = Field(min_length=1, max_length=MAX_RUNS)


class RunProblem(BaseModel):
    """Why one run was not kept (its HTTP status is 422; the others were)."""

    index: int
    run_id: str | None
    status: Literal[422] = 422
    field: str
    message: str


class RunsAnswer(BaseModel):
    """What happened to the runs of a request."""

    status: Literal["accepted", "duplicate", "partial", "rejected"]
    accepted: int
    duplicates: int
    rejected: int
    problems: list[RunProblem]


class RunsDeps:
    """What the route needs, handed over by the composition root."""

    def __init__(
        self,
        *,
        policy: Policy,
        global_token: str | None,
        intake: RunIntake,
        metrics: Metrics,
        max_body_bytes: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.policy = policy
        self.global_token = global_token
        self.intake = intake
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.clock = clock


_ONE = TypeAdapter(RunIn)


def _problem(index: int, item: Any, prefix: str, exc: ValidationError) -> RunProblem:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    run_id = item.get("run_id") if isinstance(item, dict) else None
    return RunProblem(
        index=index,
        run_id=run_id if isinstance(run_id, str) else None,
        field=f"{prefix}{where}" if where else prefix.rstrip(".") or "(body)",
        message=first["msg"],
    )


def _fast(body: bytes) -> list[_RunFields] | None:
    """Parse a body whose every run is valid in one pass; None when it needs a closer look."""
    if b"\\u0000" in body:
        return None
    try:
        if b'"runs"' in body:
            return _FastRuns.model_validate_json(body).runs
        return [_RunFields.model_validate_json(body)]
    except ValidationError:
        return None


def _items(body: bytes) -> tuple[list[Any], str]:
    """Return the raw runs of a body and the prefix of their field names; BadBody if no batch."""
    try:
        data = without_nul(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(
            "body is not valid JSON", [{"field": "(body)", "message": str(exc)}]
        ) from None
    if not isinstance(data, dict):
        message = 'a run (a JSON object) or {"runs": [...]}'
        raise BadBody(f"body must be {message}", [{"field": "(body)", "message": message}])
    if "runs" not in data:
        return [data], ""
    runs = data["runs"]
    if not isinstance(runs, list) or not runs or len(runs) > MAX_RUNS:
        message = f"a list of 1 to {MAX_RUNS:,} runs"
        raise BadBody(
            f"invalid field runs: must be {message}", [{"field": "runs", "message": message}]
        )
    return runs, "runs."


def _parse(body: bytes) -> tuple[list[tuple[int, _RunFields]], list[RunProblem], str]:
    """Return the valid runs by index, a problem per invalid one, and the field-name prefix."""
    # pydantic's JSON parser has its own recursion limit: only the slow path, which parses
    # with `json`, needs the nesting checked first
    parsed = _fast(body)
    if parsed is not None:
        return list(enumerate(parsed)), [], "runs." if b'"runs"' in body else ""
    if (problem := nesting_problem(body)) is not None:
        raise BadBody(f"body is {problem}", [{"field": "(body)", "message": problem}])
    items, prefix = _items(body)
    good: list[tuple[int, _RunFields]] = []
    bad: list[RunProblem] = []
    for index, item in enumerate(items):
        try:
            good.append((index, _ONE.validate_python(item)))
        except ValidationError as exc:
            bad.append(_problem(index, item, f"{prefix}{index}." if prefix else "", exc))
    return good, bad, prefix


def build_runs_router(deps: RunsDeps) -> APIRouter:
    """Return the router for /webhooks/runs."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    gate = TokenGate(
        max_body_bytes=deps.max_body_bytes, policy=deps.policy, global_token=deps.global_token
    )
    counted = deps.metrics.runs

    @router.post(
        "/runs",
        status_code=202,
        response_model=RunsAnswer,
        openapi_extra=json_body(RunsIn),
        responses={
            200: {"description": "every run was a repeat; nothing changed", "model": RunsAnswer},
            401: {"description": "bad or missing auth; nothing stored"},
            413: {"description": "body over the size limit"},
            422: {"description": "no run could be kept; `fields` and `problems` say why"},
            503: {"description": "storage unavailable; retry"},
        },
    )
    async def runs(
        caller: Annotated[Caller, Depends(gate.caller(Scope.TELEMETRY))],
        body: Annotated[bytes, Depends(gate.body)],
    ) -> JSONResponse:
        """Accept one run or a batch of up to 1,000; each run is kept or refused on its own."""
        good, bad, prefix = _parse(body)
        now = deps.clock()
        candidates = [(index, parsed.run(now)) for index, parsed in good]
        kept: list[Run] = []
        for (index, run), problem in zip(
            candidates, deps.intake.admit([run for _, run in candidates]), strict=True
        ):
            if problem is None:
                kept.append(run)
            else:
                bad.append(
                    RunProblem(
                        index=index,
                        run_id=run.run_id,
                        field=f"{prefix}{index}.at" if prefix else "at",
                        message=problem,
                    )
                )
        bad.sort(key=lambda p: p.index)
        counted.labels("rejected").inc(len(bad))
        if not kept:
            first = bad[0]
            return JSONResponse(
                {
                    "error": f"invalid field {first.field}: {first.message}",
                    "fields": [{"field": p.field, "message": p.message} for p in bad],
                    **RunsAnswer(
                        status="rejected", accepted=0, duplicates=0, rejected=len(bad), problems=bad
                    ).model_dump(),
                },
                status_code=422,
            )
        recorded = await deps.intake.record(kept)
        counted.labels("new").inc(recorded.accepted)
        counted.labels("duplicate").inc(recorded.duplicates)
        if bad:
            status = "partial"
        elif recorded.accepted:
            status = "accepted"
        else:
            status = "duplicate"
        answer = RunsAnswer(
            status=status,
            accepted=recorded.accepted,
            duplicates=recorded.duplicates,
            rejected=len(bad),
            problems=bad,
        )
        return JSONResponse(answer.model_dump(), status_code=200 if status == "duplicate" else 202)

    return router
