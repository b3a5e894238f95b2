"""The YAML policy file: models, `${ENV}` interpolation, validation with line numbers."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.domain.calendar import BusinessHours
from bot.domain.fields import Duration, TimeZoneName
from bot.domain.fields import FrozenModel as _Model
from bot.domain.people import Person, Roles
from bot.domain.redaction import RedactionPolicy
from bot.domain.severity import Duration as SeverityDuration
from bot.domain.severity import Severity, SeverityRules
from bot.domain.watch.policy import WatchPolicy, WorkflowWatch
from bot.handoffs.callback_targets import allow_entry
from bot.paging.channels import PROVIDERS
from bot.paging.policy import (
    EscalationPolicy,
    EscalationStep,
    EscalationTarget,
    PagingProviders,
    Rotation,
    Schedule,
)

__all__ = [
    "MIN_SECRET_LENGTH",
    "Category",
    "ConfigError",
    "ConfigProblem",
    "Duration",
    "EscalationPolicy",
    "EscalationStep",
    "EscalationTarget",
    "Jira",
    "PagingProviders",
    "Person",
    "Policy",
    "Roles",
    "Rotation",
    "Schedule",
    "SeverityOverrides",
    "Source",
    "TimeZoneName",
    "Workflow",
    "field_line",
    "load_policy",
    "parse_policy",
    "secret_advice",
    "secret_weakness",
    "weak_secret_problems",
]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _callback_allow_entry(value: str) -> str:
    allow_entry(value)
    return value


# a host name or a network that handoff callbacks may reach over plain http or privately
CallbackAllow = list[Annotated[str, AfterValidator(_callback_allow_entry)]]


class Category(StrEnum):
    CUSTOMER_FACING = "customer-facing"
    INTERNAL = "internal"
    DEVELOPER_TOOLING = "developer-tooling"
    ANALYTICS = "analytics"


class SeverityOverrides(_Model):
    """One workflow's own thresholds (`workflows.<name>.severity:`): any keys of `severity:`.

    A key left out (or written empty) takes the top-level value; the merged thresholds are
    validated like the top-level ones (`Policy.rules_for`).
    """

    error_rate_p1: float | None = Field(default=None, ge=0)
    error_rate_p2: float | None = Field(default=None, ge=0)
    error_rate_p2_sustained: SeverityDuration | None = None
    error_rate_p3: float | None = Field(default=None, ge=0)
    deviation_stddevs: float | None = Field(default=None, ge=0)
    deviation_sustained_business: SeverityDuration | None = None
    cost_per_run_factor: float | None = Field(default=None, ge=0)
    daily_spend_p2_factor: float | None = Field(default=None, ge=0)
    daily_spend_p2_sustained: SeverityDuration | None = None
    daily_spend_p3_factor: float | None = Field(default=None, ge=0)
    token_usage_p3_factor: float | None = Field(default=None, ge=0)
    refusals_p2: float | None = Field(default=None, ge=0)
    root_cause_deadline: SeverityDuration | None = None
    min_runs: int | None = Field(default=None, ge=1)
    error_rate_window: SeverityDuration | None = None
    error_rate_p2_slice: SeverityDuration | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    latency_runs: int | None = Field(default=None, ge=1)
    token_usage_window: SeverityDuration | None = None
    cost_per_run_window: SeverityDuration | None = None
    refusals_window: SeverityDuration | None = None
    hold_down: SeverityDuration | None = None
    baseline_days: int | None = Field(default=None, ge=1)
    label_map: dict[str, Severity] | None = None
    default: Severity | None = None

    def over(self, rules: SeverityRules) -> SeverityRules:
        """Return `rules` with this workflow's values in place of theirs (validated)."""
        mine = self.model_dump(exclude_none=True)
        if not mine:
            return rules
        return SeverityRules.model_validate({**rules.model_dump(), **mine})


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
    # this workflow's own severity thresholds, over the top-level `severity:`
    severity: SeverityOverrides = SeverityOverrides()
    watch: WorkflowWatch = WorkflowWatch()


class Source(_Model):
    """A sender with credentials of its own: an alert source, or an `agent` that hands off work.

    Its `token` or `hmac_secret` opens only what its kind may do (alerts, or handoffs and flags);
    the global webhook token opens everything. `require_timestamp` refuses Grafana signatures
    without a timestamp, which could be replayed forever.
    """

    kind: Literal["alertmanager", "grafana", "generic", "agent", "telemetry"] = "generic"
    token: str | None = None
    hmac_secret: str | None = None
    require_timestamp: bool = False
    default_workflow: str | None = None
    trusted_severity_hint: bool = False
    # a sustained duration counts from the sender's start time and window only when trusted;
    # otherwise from when the bot first saw the alert firing
    trusted_timing: bool = False
    workflow_labels: list[str] = ["workflow", "ai_workflow"]
    callback_allow: CallbackAllow = []

    @field_validator("require_timestamp")
    @classmethod
    def _timestamp_needs_a_grafana_signature(cls, value: bool, info: ValidationInfo) -> bool:
        # checked on the field (kind and hmac_secret come before it) so the problem names its line
        if value and info.data.get("kind") == "agent":
            raise ValueError(
                "require_timestamp applies to Grafana signatures; an agent's "
                "X-AI-Incident-Signature always carries its timestamp"
            )
        if value and "hmac_secret" in info.data and info.data["hmac_secret"] is None:
            raise ValueError(
                "require_timestamp needs hmac_secret: it applies to Grafana signatures"
            )
        return value


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
    callback_allow: CallbackAllow = []

    @model_validator(mode="after")
    def _ordered(self) -> Handoffs:
        if self.review_threshold > self.auto_threshold:
            raise ValueError("review_threshold must not exceed auto_threshold")
        return self


class Jira(_Model):
    """How tickets are filed and kept in step (policy-file section `jira:`).

    The connection (URL, user, token, default project) comes from the environment; this says what
    a ticket looks like and how the two sides talk back.
    """

    # false: no tickets at all, for a team without Jira (without JIRA_URL they are printed)
    enabled: bool = True
    project: str | None = None
    issue_type: str = "Task"
    priorities: dict[Literal["P1", "P2", "P3"], str] = {
        "P1": "Highest",
        "P2": "High",
        "P3": "Medium",
    }
    labels: list[str] = []
    # a transition whose name is listed wins; otherwise the first one into a `done` status category
    done_transitions: list[str] = ["Done", "Resolve", "Resolve Issue", "Close", "Close Issue"]
    webhook_secret: str | None = None
    timeout: Duration = timedelta(seconds=10)

    def priority_for(self, severity: str) -> str | None:
        """Return the Jira priority name for a severity, if one is mapped."""
        return next((name for sev, name in self.priorities.items() if sev == severity), None)


class Digest(_Model):
    day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = (
        "monday"
    )
    time: dt.time = dt.time(9, 0)
    channel: str | None = None


class Policy(_Model):
    """The whole policy file."""

    timezone: TimeZoneName = "UTC"
    business_hours: BusinessHours | None = None
    people: dict[str, Person] = {}
    roles: Roles = Roles()
    workflows: dict[str, Workflow] = {}
    default_workflow: str = "unassigned"
    default_channel: str = "#ai-incidents"
    sources: dict[str, Source] = {}
    schedules: dict[str, Schedule] = {}
    escalation_policies: dict[str, EscalationPolicy] = {}
    # the escalation policy of workflows that name none (built-in default when unset)
    default_escalation_policy: str | None = None
    paging: PagingProviders = PagingProviders()
    severity: SeverityRules = SeverityRules()
    handoffs: Handoffs = Handoffs()
    digest: Digest = Digest()
    jira: Jira = Jira()
    redaction: RedactionPolicy = RedactionPolicy()
    watch: WatchPolicy = WatchPolicy()

    @property
    def hours(self) -> BusinessHours:
        """Return business hours, in the team time zone unless they name their own."""
        return self.business_hours or BusinessHours(timezone=self.timezone)

    def watched_workflow(self, value: str) -> str:
        """Return the workflow that telemetry naming `value` belongs to (by name or alias)."""
        if value in self.workflows:
            return value
        for name, workflow in self.workflows.items():
            if value in workflow.watch.alias:
                return name
        return value

    def workflow(self, name: str) -> Workflow:
        """Return the named workflow's settings, or defaults for one the file does not know."""
        return self.workflows.get(name) or Workflow()

    def rules_for(self, workflow: str) -> SeverityRules:
        """Return a workflow's severity thresholds: `severity:` with the workflow's overrides."""
        return self.workflow(workflow).severity.over(self.severity)

    @model_validator(mode="after")
    def _references(self) -> Policy:
        problems = list(_reference_problems(self.model_dump()))
        problems += _override_problems(self)
        if problems:
            raise _ReferenceProblems(problems)
        return self


def _override_problems(policy: Policy) -> list[tuple[str, str]]:
    """Say which workflows' overrides make thresholds that do not fit together."""
    problems = []
    for name, workflow in policy.workflows.items():
        try:
            workflow.severity.over(policy.severity)
        except ValidationError as exc:
            for err in exc.errors():
                where = f"workflows.{name}.severity"
                if err["loc"] and str(err["loc"][0]) in workflow.severity.model_fields_set:
                    where += f".{err['loc'][0]}"
                problems.append((where, str(err["msg"]).removeprefix("Value error, ")))
    return problems


class _ReferenceProblems(ValueError):
    """Every reference to something the file does not define, each with its own field path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


def _undefined(ref: str, section: str, known: list[str]) -> str:
    names = sorted(known)
    message = f"{ref!r} is not defined under {section}"
    if close := difflib.get_close_matches(ref, names, n=1):
        return f"{message}; did you mean {close[0]!r}?"
    if names:
        return f"{message} (defined: {', '.join(names)})"
    return f"{message} (none is defined)"


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _reference_problems(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (field path, message) for every reference to something the file does not define.

    Works on plain data (a validated policy's dump, or the raw file when other fields are
    invalid), skipping what is malformed, so reference problems are reported with the rest.
    """
    people = _mapping(data.get("people"))
    workflows = _mapping(data.get("workflows"))
    schedules = _mapping(data.get("schedules"))
    policies = _mapping(data.get("escalation_policies"))

    def member(path: str, ref: Any) -> Iterator[tuple[str, str]]:
        if isinstance(ref, str) and not ref.startswith("group:") and ref not in people:
            yield path, _undefined(ref, "people", list(people))

    roles = _mapping(data.get("roles"))
    for role in ("ai_lead", "founder", "responders", "reviewers"):
        for i, ref in enumerate(_sequence(roles.get(role))):
            yield from member(f"roles.{role}.{i}", ref)
    for name, wf in workflows.items():
        wf = _mapping(wf)
        if wf.get("owner") is not None:
            yield from member(f"workflows.{name}.owner", wf["owner"])
        policy = wf.get("escalation_policy")
        if isinstance(policy, str) and policy and policy not in policies:
            yield (
                f"workflows.{name}.escalation_policy",
                _undefined(policy, "escalation_policies", list(policies)),
            )
    aliases: dict[str, str] = {}
    for name, wf in workflows.items():
        watched = _mapping(_mapping(wf).get("watch"))
        for i, alias in enumerate(_sequence(watched.get("alias"))):
            if not isinstance(alias, str):
                continue
            where = f"workflows.{name}.watch.alias.{i}"
            if alias in workflows and alias != name:
                yield where, f"{alias!r} is the name of another workflow"
            elif alias in aliases and aliases[alias] != name:
                yield where, f"{alias!r} is already an alias of workflow {aliases[alias]!r}"
            aliases.setdefault(alias, name)
    default_policy = data.get("default_escalation_policy")
    if isinstance(default_policy, str) and default_policy and default_policy not in policies:
        yield (
            "default_escalation_policy",
            _undefined(default_policy, "escalation_policies", list(policies)),
        )
    for name, src in _mapping(data.get("sources")).items():
        default = _mapping(src).get("default_workflow")
        if isinstance(default, str) and default and default not in workflows:
            yield (
                f"sources.{name}.default_workflow",
                _undefined(default, "workflows", list(workflows)),
            )
    for name, sched in schedules.items():
        for i, layer in enumerate(_sequence(_mapping(sched).get("layers"))):
            for j, user in enumerate(_sequence(_mapping(layer).get("users"))):
                yield from member(f"schedules.{name}.layers.{i}.users.{j}", user)
    for name, pol in policies.items():
        for i, step in enumerate(_sequence(_mapping(pol).get("steps"))):
            for j, target in enumerate(_sequence(_mapping(step).get("notify"))):
                where = f"escalation_policies.{name}.steps.{i}.notify.{j}"
                target = _mapping(target)
                schedule = target.get("schedule")
                if isinstance(schedule, str) and schedule and schedule not in schedules:
                    yield f"{where}.schedule", _undefined(schedule, "schedules", list(schedules))
                if target.get("person"):
                    yield from member(f"{where}.person", target["person"])


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


# -- reading YAML ------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's surprises for a policy file.

    `18:00` stays the text "18:00" (YAML 1.1 reads it as the base-60 integer 1080, which would
    become 00:18), and `2026-01-05` stays text for the field to parse.
    """


_INT, _FLOAT, _TIMESTAMP = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "timestamp"))
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_problem(file: str, exc: yaml.YAMLError) -> ConfigProblem:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return ConfigProblem(file, "", f"not valid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    reason = exc.problem or "cannot be parsed"
    if exc.context:
        context = exc.context
        if exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context += f" that starts on line {exc.context_mark.line + 1}"
        reason += f" ({context})"
    return ConfigProblem(file, "", f"not valid YAML: {reason}", line)


def _duplicate_keys(
    node: yaml.Node, path: tuple[str, ...], file: str, seen_nodes: set[int]
) -> Iterator[ConfigProblem]:
    """PyYAML silently keeps the last of two equal keys; a policy file must not lose a section."""
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            line = key.start_mark.line + 1
            if key.value in first and key.value != "<<":
                yield ConfigProblem(
                    file,
                    ".".join((*path, key.value)),
                    f"duplicate key {key.value!r} (first on line {first[key.value]}); "
                    "YAML would silently keep only the last one",
                    line,
                )
            first.setdefault(key.value, line)
            yield from _duplicate_keys(value, (*path, key.value), file, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, str(i)), file, seen_nodes)


def _interpolate(
    value: Any, env: Mapping[str, str], path: str, missing: list[tuple[str, str]]
) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append((path, name))
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
    """Find the 1-based line of a dotted field path in the composed YAML tree.

    A path that leaves the tree (a missing key) gives the line of the deepest part that exists.
    """
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
                    # no break: like the loader, the last of duplicate keys wins
        elif isinstance(current, yaml.SequenceNode) and part.isdigit():
            idx = int(part)
            if idx < len(current.value):
                nxt = current.value[idx]
                best = nxt.start_mark.line + 1
        if nxt is None:
            break
        current = nxt
    return best


# -- explaining validation errors --------------------------------------------------------------


def _field_path(loc: tuple[int | str, ...], data: Any, error_type: str) -> tuple[list[str], bool]:
    """Return the field path of a pydantic error location and whether the error is about a key.

    pydantic mixes validator tags ("function-after[...]", "[key]", union member names) into
    locations; walking the data keeps exactly the parts that are fields, including fields whose
    user-chosen names look like tags ("function-x", "a[b]").
    """
    parts: list[str] = []
    about_key = False
    current = data
    for i, part in enumerate(loc):
        in_data = (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        )
        if part == "[key]":
            about_key = True
        elif in_data:
            parts.append(str(part))
            current = current[part]
        elif error_type == "missing" and i == len(loc) - 1:
            parts.append(str(part))
    return parts, about_key


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(path: list[str]) -> type[BaseModel] | None:
    """Return the settings model at a field path of the policy file, if there is one."""
    tp: Any = Policy
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, tuple):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


_EXPECTED = {
    "model_type": "a mapping of settings (key: value)",
    "model_attributes_type": "a mapping of settings (key: value)",
    "dict_type": "a mapping (name: settings)",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "time_type": "a time of day such as '09:00'",
    "time_parsing": "a time of day such as '09:00'",
    "timedelta_type": "a duration such as '10m' or '2h'",
    "timedelta_parsing": "a duration such as '10m' or '2h'",
}

_PATTERN_MEANING = {
    "slack_id": "a Slack user id such as U0123ABCD",
    "email": "an email address",
    "channel": "a Slack channel id such as C0123ABCD or a #channel-name",
}

_BOUNDS = {
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "greater than"),
}


def _reason(err: Any, path: list[str], about_key: bool) -> str:
    """Say what is wrong in words an on-call engineer reads at a glance."""
    kind: str = err["type"]
    value = err.get("input")
    ctx: dict[str, Any] = err.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        allowed = sorted(model.model_fields) if model is not None else []
        message = f"unknown key {path[-1]!r}"
        if close := difflib.get_close_matches(path[-1], allowed, n=1):
            return f"{message}; did you mean {close[0]!r}?"
        return f"{message}; expected one of: {', '.join(allowed)}" if allowed else message
    if kind == "invalid_key":
        return f"the key {value!r} must be text; put it in quotes"
    if kind in ("literal_error", "enum"):
        if about_key:
            return f"unknown key {value!r}; expected {ctx.get('expected')}"
        return f"expected {ctx.get('expected')}, got {_describe(value)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}, got {value!r}"
    if kind == "string_pattern_mismatch":
        meaning = _PATTERN_MEANING.get(
            path[-1] if path else "", f"text matching {ctx.get('pattern')}"
        )
        return f"expected {meaning}, got {value!r}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _EXPECTED:
        if value is None:
            return f"is empty; expected {_EXPECTED[kind]}"
        return f"expected {_EXPECTED[kind]}, got {_describe(value)}"
    return str(err["msg"]).removeprefix("Value error, ")


def parse_policy(text: str, *, file: str, env: Mapping[str, str]) -> Policy:
    """Parse and validate policy YAML; raise ConfigError naming file, line, field and problem."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(file, exc)]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    "",
                    "the policy file must be a mapping of sections (timezone:, people:, "
                    f"workflows:, …), got {_describe(data)}",
                    line,
                )
            ]
        )
    problems = list(_duplicate_keys(root, (), file, set())) if root is not None else []
    missing: list[tuple[str, str]] = []
    data = _interpolate(data, env, "", missing)
    for path, name in missing:
        problems.append(
            ConfigProblem(
                file,
                path,
                f"environment variable {name} is not set (write ${{{name}:-default}} "
                "to make it optional)",
                _line_of(root, tuple(path.split("."))),
            )
        )
    try:
        policy: Policy | None = Policy.model_validate(data)
    except ValidationError as exc:
        policy = None
        invalid = list(_validation_problems(exc, data, root, file))
        # a field whose variable is unset got "" as a stand-in: the variable is the problem
        unset = {path for path, _ in missing}
        problems += [
            p for p in invalid if not any(p.path == u or p.path.startswith(f"{u}.") for u in unset)
        ]
    problems.sort(key=lambda p: p.line or 0)
    if problems or policy is None:
        raise ConfigError(problems)
    return policy


def _validation_problems(
    exc: ValidationError, data: dict[str, Any], root: yaml.Node | None, file: str
) -> Iterator[ConfigProblem]:
    def located(path: str, message: str) -> ConfigProblem:
        return ConfigProblem(file, path, message, _line_of(root, tuple(path.split("."))))

    references_checked = False
    for err in exc.errors():
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, _ReferenceProblems):
            references_checked = True
            for path, message in error.problems:
                yield located(path, message)
            continue
        parts, about_key = _field_path(err["loc"], data, err["type"])
        yield located(".".join(parts), _reason(err, parts, about_key))
    if not references_checked:
        # other fields are invalid, so the model never got to its cross-reference check:
        # run it on the file as written so those problems are reported in the same round
        for path, message in _reference_problems(data):
            yield located(path, message)


def load_policy(path: Path, env: Mapping[str, str]) -> Policy:
    """Load the policy file at `path`; a missing file gives the built-in defaults."""
    if not path.exists():
        return Policy()
    return parse_policy(path.read_text(encoding="utf-8"), file=str(path), env=env)


def field_line(text: str, path: str) -> int | None:
    """Return the line of a dotted field path in policy YAML (None when it cannot be read)."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    return _line_of(root, tuple(path.split("."))) if root is not None else None


# -- weak secrets ------------------------------------------------------------------------------

MIN_SECRET_LENGTH = 16

# what people write before they have a real secret: `change-me-grafana`, `<token>`, `xxxxxxxx`
_PLACEHOLDER = re.compile(
    r"change[-_. ]?me|replace[-_. ]?me|fill[-_. ]?me|placeholder|your[-_. ]|example|dummy"
    r"|^<.*>$|^(.)\1*$"
    r"|^(?:secret|password|passwd|token|test|default|todo|tbd|none|null)$",
    re.IGNORECASE,
)


def secret_weakness(value: str) -> str | None:
    """Say why a secret guards nothing (empty, a placeholder, too short), or None if it will do."""
    if not value.strip():
        return "is empty"
    if _PLACEHOLDER.search(value):
        return "is a placeholder anyone can guess"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is only {len(value)} characters long"
    return None


def secret_advice(variables: list[str]) -> str:
    """Tell the operator how to set a strong secret, naming the variable(s) it is read from."""
    strong = f"a random value of at least {MIN_SECRET_LENGTH} characters"
    if variables:
        return f"set {' or '.join(variables)} to {strong} (e.g. `openssl rand -hex 32`)"
    return (
        "it is written in the file: read it from the environment with ${SOME_VARIABLE} and set "
        f"that variable to {strong} (e.g. `openssl rand -hex 32`)"
    )


def _secret_fields(policy: Policy) -> Iterator[tuple[str, str | None]]:
    """Yield (field path, value) of every secret that lets a request in or signs what is sent."""
    for name, source in policy.sources.items():
        yield f"sources.{name}.token", source.token
        yield f"sources.{name}.hmac_secret", source.hmac_secret
    yield "jira.webhook_secret", policy.jira.webhook_secret
    for provider in PROVIDERS:
        if provider.secret:
            yield f"paging.{provider.secret}", policy.paging.text(provider.secret)


def _written(node: yaml.Node | None, path: tuple[str, ...]) -> str | None:
    """Return a scalar as written in the file (before `${VAR}` interpolation), if it is there."""
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        found = None
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                found = value  # the last of duplicate keys wins, as in the loader
        node = found
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def weak_secret_problems(policy: Policy, text: str, *, file: str) -> list[ConfigProblem]:
    """Return a problem for each secret of the policy file that anyone could present.

    A secret is weak when it is a placeholder (`change-me-…`), shorter than 16 characters, or
    empty where the file asks for one (`${VAR}`, or `${VAR:-default}` with a default). A secret
    left out, written empty, or written `${VAR:-}` is simply not configured.
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        root = None
    problems = []
    for path, value in _secret_fields(policy):
        parts = tuple(path.split("."))
        written = _written(root, parts) or ""
        references = list(_ENV_REF.finditer(written))
        if value:
            reason = secret_weakness(value)
        else:
            optional = not _ENV_REF.sub("", written).strip() and all(
                m.group(2) == "" for m in references
            )
            reason = None if optional else "is empty"
        if reason is not None:
            variables = list(dict.fromkeys(m.group(1) for m in references))
            problems.append(
                ConfigProblem(
                    file, path, f"{reason}; {secret_advice(variables)}", _line_of(root, parts)
                )
            )
    return sorted(problems, key=lambda p: p.line or 0)
