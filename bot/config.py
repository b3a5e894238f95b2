"""The YAML policy file: models, `${ENV}` interpolation, validation with line numbers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bot.domain.calendar import BusinessHours
from bot.domain.redaction import RedactionPolicy
from bot.domain.severity import SeverityRules, parse_duration

__all__ = [
    "Category",
    "ConfigError",
    "ConfigProblem",
    "Policy",
    "Source",
    "Workflow",
    "load_policy",
    "parse_policy",
]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(StrEnum):
    CUSTOMER_FACING = "customer-facing"
    INTERNAL = "internal"
    DEVELOPER_TOOLING = "developer-tooling"
    ANALYTICS = "analytics"


class Person(_Model):
    name: str | None = None
    slack_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    jira_account: str | None = None
    phone: str | None = None


class Roles(_Model):
    """Role members are person ids or Slack user groups written `group:S0123ABC`."""

    ai_lead: list[str] = []
    founder: list[str] = []
    responders: list[str] = []
    reviewers: list[str] = []


class Workflow(_Model):
    category: Category = Category.INTERNAL
    owner: str | None = None
    channel: str | None = Field(default=None, pattern=r"^[CG][A-Z0-9]{8,}$|^#[a-z0-9_-]+$")
    jira_project: str | None = None
    escalation_policy: str | None = None
    production: bool = True
    kill_switch_default: Literal["enabled", "paused"] = "enabled"
    auto_pause_on_p1: bool = False
    resolve_on_source_resolve: bool = True
    cost_baseline_usd_per_day: float | None = None


class Source(_Model):
    """An alert sender; `token` or `hmac_secret` overrides the global webhook token."""

    kind: Literal["alertmanager", "grafana", "generic", "agent"] = "generic"
    token: str | None = None
    hmac_secret: str | None = None
    default_workflow: str | None = None
    trusted_severity_hint: bool = False
    workflow_labels: list[str] = ["workflow", "ai_workflow"]


class Rotation(_Model):
    users: list[str]
    period: Literal["daily", "weekly", "custom"] = "weekly"
    custom_period: Duration | None = None
    handoff_time: time = time(9, 0)
    handoff_day: int = Field(default=0, ge=0, le=6)
    start: str | None = None
    timezone: str | None = None

    @model_validator(mode="after")
    def _custom_needs_length(self) -> Rotation:
        if self.period == "custom" and self.custom_period is None:
            raise ValueError("period 'custom' needs custom_period (e.g. '3d')")
        return self


class Schedule(_Model):
    timezone: str | None = None
    layers: list[Rotation]


class EscalationTarget(_Model):
    schedule: str | None = None
    person: str | None = None
    role: Literal["ai_lead", "founder", "responders", "reviewers"] | None = None
    user_group: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EscalationTarget:
        chosen = [f for f in ("schedule", "person", "role", "user_group") if getattr(self, f)]
        if len(chosen) != 1:
            raise ValueError("name exactly one of schedule, person, role, user_group")
        return self


class EscalationStep(_Model):
    notify: list[EscalationTarget]
    channels: list[Literal["slack_dm", "pagerduty", "opsgenie", "webhook"]] = ["slack_dm"]
    wait: Duration = timedelta(minutes=10)


class EscalationPolicy(_Model):
    steps: list[EscalationStep]
    repeat: int = Field(default=0, ge=0, le=10)


class PagingProviders(_Model):
    pagerduty_routing_key: str | None = None
    opsgenie_api_key: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


class HandoffSla(_Model):
    time_to_claim: Duration
    time_to_decide: Duration


class Handoffs(_Model):
    auto_threshold: float = Field(default=0.95, ge=0, le=1)
    review_threshold: float = Field(default=0.80, ge=0, le=1)
    review_channel: str | None = None
    lease: Duration = timedelta(minutes=15)
    sla: dict[Literal["review", "human"], HandoffSla] = {
        "review": HandoffSla(time_to_claim=timedelta(hours=4), time_to_decide=timedelta(hours=24)),
        "human": HandoffSla(time_to_claim=timedelta(minutes=15), time_to_decide=timedelta(hours=1)),
    }

    @model_validator(mode="after")
    def _ordered(self) -> Handoffs:
        if self.review_threshold > self.auto_threshold:
            raise ValueError("review_threshold must not exceed auto_threshold")
        return self


class Digest(_Model):
    day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = (
        "monday"
    )
    time: dt.time = dt.time(9, 0)
    channel: str | None = None


class Policy(_Model):
    """The whole policy file."""

    timezone: str = "UTC"
    business_hours: BusinessHours | None = None
    people: dict[str, Person] = {}
    roles: Roles = Roles()
    workflows: dict[str, Workflow] = {}
    default_workflow: str = "unassigned"
    default_channel: str = "#ai-incidents"
    sources: dict[str, Source] = {}
    schedules: dict[str, Schedule] = {}
    escalation_policies: dict[str, EscalationPolicy] = {}
    paging: PagingProviders = PagingProviders()
    severity: SeverityRules = SeverityRules()
    handoffs: Handoffs = Handoffs()
    digest: Digest = Digest()
    redaction: RedactionPolicy = RedactionPolicy()

    @property
    def hours(self) -> BusinessHours:
        """Return business hours, in the team time zone unless they name their own."""
        return self.business_hours or BusinessHours(timezone=self.timezone)

    def workflow(self, name: str) -> Workflow:
        """Return the named workflow's settings, or defaults for one the file does not know."""
        return self.workflows.get(name) or Workflow()

    @model_validator(mode="after")
    def _references(self) -> Policy:
        problems = list(_reference_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _tz_problem(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}"
    return None


def _reference_problems(p: Policy) -> Iterator[str]:
    people = set(p.people)

    def member(path: str, ref: str) -> Iterator[str]:
        if not ref.startswith("group:") and ref not in people:
            yield f"{path}: {ref!r} is not a person defined under people"

    if (tz := _tz_problem(p.timezone)) is not None:
        yield f"timezone: {tz}"
    for role in ("ai_lead", "founder", "responders", "reviewers"):
        for ref in getattr(p.roles, role):
            yield from member(f"roles.{role}", ref)
    for name, wf in p.workflows.items():
        if wf.owner is not None:
            yield from member(f"workflows.{name}.owner", wf.owner)
        if wf.escalation_policy and wf.escalation_policy not in p.escalation_policies:
            yield (
                f"workflows.{name}.escalation_policy: {wf.escalation_policy!r} is not defined "
                "under escalation_policies"
            )
    for name, src in p.sources.items():
        if src.default_workflow and src.default_workflow not in p.workflows:
            yield f"sources.{name}.default_workflow: {src.default_workflow!r} is not a workflow"
    for name, sched in p.schedules.items():
        if (tz := _tz_problem(sched.timezone)) is not None:
            yield f"schedules.{name}.timezone: {tz}"
        for i, layer in enumerate(sched.layers):
            if (tz := _tz_problem(layer.timezone)) is not None:
                yield f"schedules.{name}.layers.{i}.timezone: {tz}"
            for user in layer.users:
                yield from member(f"schedules.{name}.layers.{i}.users", user)
    for name, pol in p.escalation_policies.items():
        for i, step in enumerate(pol.steps):
            for j, target in enumerate(step.notify):
                where = f"escalation_policies.{name}.steps.{i}.notify.{j}"
                if target.schedule and target.schedule not in p.schedules:
                    yield f"{where}.schedule: {target.schedule!r} is not defined under schedules"
                if target.person:
                    yield from member(f"{where}.person", target.person)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a policy file, located."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ConfigError(Exception):
    """The policy file cannot be used; `problems` says where and why."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _interpolate(value: Any, env: Mapping[str, str], path: str, missing: list[str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append(f"{path}\0{name}")
            return ""

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, env, f"{path}.{k}" if path else str(k), missing)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}.{i}", missing) for i, v in enumerate(value)]
    return value


def _line_of(node: yaml.Node | None, path: tuple[str, ...]) -> int | None:
    """Find the 1-based line of a dotted field path in the composed YAML tree."""
    if node is None:
        return None
    best = node.start_mark.line + 1
    current: yaml.Node = node
    for part in path:
        nxt: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, val in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    best = key.start_mark.line + 1
                    nxt = val
                    break
        elif isinstance(current, yaml.SequenceNode) and part.isdigit():
            idx = int(part)
            if idx < len(current.value):
                nxt = current.value[idx]
                best = nxt.start_mark.line + 1
        if nxt is None:
            break
        current = nxt
    return best


def _loc_path(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    # pydantic puts validator names like "function-after[...]" into locations; they are not fields
    return tuple(
        str(p)
        for p in loc
        if not (isinstance(p, str) and ("[" in p or ("-" in p and p.startswith("function"))))
    )


def parse_policy(text: str, *, file: str, env: Mapping[str, str]) -> Policy:
    """Parse and validate policy YAML; raise ConfigError naming file, line, field and problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {exc}", line)]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, "", "the policy file must be a mapping", 1)])
    missing: list[str] = []
    data = _interpolate(data, env, "", missing)
    problems = []
    for item in missing:
        path, name = item.split("\0")
        line = _line_of(root, tuple(path.split(".")))
        problems.append(ConfigProblem(file, path, f"environment variable {name} is not set", line))
    if problems:
        raise ConfigError(problems)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _loc_path(err["loc"])
            message = err["msg"]
            if not loc and message.startswith("Value error, "):
                # cross-reference errors come back as one message naming their own paths
                for part in message.removeprefix("Value error, ").split("; "):
                    field, _, rest = part.partition(": ")
                    line = _line_of(root, tuple(field.split(".")))
                    problems.append(ConfigProblem(file, field, rest, line))
                continue
            problems.append(
                ConfigProblem(
                    file,
                    ".".join(loc),
                    message.removeprefix("Value error, "),
                    _line_of(root, loc),
                )
            )
        raise ConfigError(problems) from exc


def load_policy(path: Path, env: Mapping[str, str]) -> Policy:
    """Load the policy file at `path`; a missing file gives the built-in defaults."""
    if not path.exists():
        return Policy()
    return parse_policy(path.read_text(encoding="utf-8"), file=str(path), env=env)
