"""The policy file (§3): the example, `${ENV}` interpolation, and errors with file, line and field."""

from __future__ import annotations

import textwrap
from datetime import time, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from bot.config import Category, ConfigError, ConfigProblem, Policy, load_policy, parse_policy
from bot.domain.calendar import BusinessHours
from bot.domain.redaction import RedactionPolicy
from bot.domain.severity import Severity, SeverityRules
from tests.conftest import EXAMPLE

FILE = "team/ai-incident.yml"
EXAMPLE_ENV = {
    "ALERTMANAGER_WEBHOOK_TOKEN": "am-secret",
    "GRAFANA_WEBHOOK_SECRET": "grafana-secret",
    "LLM_OBS_WEBHOOK_TOKEN": "llm-secret",
    "AGENT_WEBHOOK_SECRET": "agent-secret",
    "OTEL_WEBHOOK_TOKEN": "otel-secret",
    "PAGERDUTY_ROUTING_KEY": "R0UTINGKEY",
    "OPSGENIE_API_KEY": "og-key",
    "PAGING_WEBHOOK_URL": "http://127.0.0.1:9/page",
    "PAGING_WEBHOOK_SECRET": "page-secret",
}


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle` (what the error must point at)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the test document")


def problems(text: str, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, file=FILE, env=env or {})
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


def only_problem(text: str, env: dict[str, str] | None = None) -> ConfigProblem:
    found = problems(text, env)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def assert_problem(problem: ConfigProblem, *, path: str, line: int, says: tuple[str, ...]) -> None:
    """The problem names the file, the line, the dotted field path and says what is wrong."""
    rendered = str(problem)
    assert problem.file == FILE
    assert problem.path == path, rendered
    assert problem.line == line, rendered
    assert rendered.startswith(f"{FILE}:{line}: {path}: "), rendered
    for words in says:
        assert words in problem.message, rendered
    # no pydantic internals leak into what the user reads
    for noise in ("Input should", "Value error", "function-", "[key]", "pydantic", "<unicode"):
        assert noise not in rendered, rendered


# -- the example file ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Policy:
    return load_policy(EXAMPLE, EXAMPLE_ENV)


def test_example_loads_with_and_without_its_environment() -> None:
    assert isinstance(load_policy(EXAMPLE, {}), Policy)  # every ${VAR} has a default
    assert isinstance(load_policy(EXAMPLE, EXAMPLE_ENV), Policy)


def test_example_has_every_section_of_the_spec_and_none_is_left_at_its_default(
    example: Policy,
) -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    sections = {
        "timezone",
        "business_hours",
        "people",
        "roles",
        "workflows",
        "sources",
        "schedules",
        "escalation_policies",
        "paging",
        "severity",
        "handoffs",
        "digest",
        "redaction",
        "watch",
    }
    assert sections <= set(raw)
    defaults = Policy()
    for section in sections:
        assert getattr(example, section) != getattr(defaults, section), section
    # the sections that are settings blocks spell out every setting they have
    for section, model in [
        ("roles", example.roles),
        ("paging", example.paging),
        ("severity", example.severity),
        ("digest", example.digest),
        ("redaction", example.redaction),
        ("watch", example.watch),
        ("watch.retention", example.watch.retention),
    ]:
        assert model.model_fields_set == set(type(model).model_fields), section


def test_example_time_zone_and_business_hours(example: Policy) -> None:
    assert example.timezone == "Europe/Berlin"
    assert example.hours == BusinessHours(
        timezone="Europe/Berlin", days=(0, 1, 2, 3, 4), start=time(9), end=time(18)
    )


def test_example_people_have_slack_email_and_jira(example: Policy) -> None:
    assert set(example.people) == {"alice", "bob", "carol"}
    alice = example.people["alice"]
    assert alice.slack_id == "U0ALICE001"
    assert alice.email == "alice@example.com"
    assert alice.jira_account == "5b10ac8d82e05b22cc7d4ef5"
    assert all(p.slack_id and p.email for p in example.people.values())


def test_example_roles_by_person_and_by_user_group(example: Policy) -> None:
    roles = example.roles
    assert roles.ai_lead == ["alice"]
    assert roles.founder == ["carol"]
    assert roles.reviewers == ["bob", "alice"]
    assert "group:S0RESPOND1" in roles.responders
    assert {"alice", "bob"} <= set(roles.responders)


def test_example_workflows_cover_every_category(example: Policy) -> None:
    assert {wf.category for wf in example.workflows.values()} == set(Category)
    chatbot = example.workflows["support-chatbot"]
    assert chatbot.category is Category.CUSTOMER_FACING
    assert chatbot.owner == "bob"
    assert chatbot.channel == "C0SUPPORT01"
    assert chatbot.jira_project == "SUP"
    assert chatbot.escalation_policy == "customer-facing"
    assert chatbot.auto_pause_on_p1 is True
    assert chatbot.resolve_on_source_resolve is False
    summarizer = example.workflows["email-summarizer"]
    assert summarizer.kill_switch_default == "enabled"
    assert summarizer.cost_baseline_usd_per_day == 12.5
    assert example.default_workflow in example.workflows
    # an unknown workflow name falls back to defaults rather than failing
    assert example.workflow("not-in-the-file").category is Category.INTERNAL


def test_example_sources_and_their_auth_come_from_the_environment(example: Policy) -> None:
    sources = example.sources
    assert {s.kind for s in sources.values()} == {
        "alertmanager",
        "grafana",
        "generic",
        "agent",
        "telemetry",
    }
    assert sources["alertmanager"].token == "am-secret"
    assert sources["grafana"].hmac_secret == "grafana-secret"
    assert sources["grafana"].require_timestamp is True
    assert sources["llm-observability"].token == "llm-secret"
    assert sources["llm-observability"].trusted_severity_hint is True
    assert sources["agents"].hmac_secret == "agent-secret"
    assert sources["otel"].token == "otel-secret"
    assert sources["alertmanager"].workflow_labels == ["workflow", "ai_workflow"]
    # without the environment the documented placeholders apply
    bare = load_policy(EXAMPLE, {})
    assert bare.sources["alertmanager"].token == "change-me-alertmanager"
    assert bare.paging.pagerduty_routing_key == ""


def test_example_schedules(example: Policy) -> None:
    primary = example.schedules["primary"]
    assert primary.timezone == "Europe/Berlin"
    weekly, custom = primary.layers
    assert weekly.users == ["alice", "bob"] and weekly.period == "weekly"
    assert weekly.handoff_day == 0 and weekly.handoff_time == time(9)
    assert weekly.start == "2026-01-05"
    assert custom.period == "custom" and custom.custom_period == timedelta(days=3)
    assert custom.handoff_time == time(18)
    assert example.schedules["founders"].layers[0].period == "daily"


def test_example_escalation_policies_use_every_kind_of_target_and_channel(
    example: Policy,
) -> None:
    policies = example.escalation_policies
    assert set(policies) == {"ai-default", "customer-facing"}
    assert policies["ai-default"].repeat == 1
    first = policies["ai-default"].steps[0]
    assert first.notify[0].schedule == "primary" and first.wait == timedelta(minutes=10)
    targets = [t for p in policies.values() for s in p.steps for t in s.notify]
    assert {t.schedule for t in targets} >= {"primary"}
    assert {t.role for t in targets} >= {"ai_lead", "founder"}
    assert {t.person for t in targets} >= {"alice"}
    assert {t.user_group for t in targets} >= {"S0RESPOND1"}
    channels = {c for p in policies.values() for s in p.steps for c in s.channels}
    assert channels == {"slack_dm", "pagerduty", "opsgenie", "webhook"}


def test_example_paging_providers(example: Policy) -> None:
    assert example.paging.pagerduty_routing_key == "R0UTINGKEY"
    assert example.paging.opsgenie_api_key == "og-key"
    assert example.paging.webhook_url == "http://127.0.0.1:9/page"
    assert example.paging.webhook_secret == "page-secret"


def test_example_severity_thresholds(example: Policy) -> None:
    rules = example.severity
    assert rules != SeverityRules()
    assert rules.error_rate_p1 == 0.20 and rules.error_rate_p2 == 0.05
    assert rules.error_rate_p2_sustained == timedelta(hours=2)
    assert rules.deviation_sustained_business == timedelta(hours=4)
    assert rules.label_map == {"critical": Severity.P1, "warning": Severity.P2, "info": Severity.P3}
    assert rules.default is Severity.P3


def test_example_handoff_tiers_and_slas(example: Policy) -> None:
    h = example.handoffs
    assert (h.auto_threshold, h.review_threshold) == (0.95, 0.80)
    assert h.review_channel == "C0REVIEWS01"
    assert h.lease == timedelta(minutes=15)
    assert h.sla["review"].time_to_claim == timedelta(hours=4)
    assert h.sla["review"].time_to_decide == timedelta(hours=24)
    assert h.sla["human"].time_to_claim == timedelta(minutes=15)
    assert h.sla["human"].time_to_decide == timedelta(hours=1)


def test_example_digest_and_redaction(example: Policy) -> None:
    assert (example.digest.day, example.digest.time) == ("monday", time(9))
    assert example.digest.channel == "C0AIREVIEW1"
    red = example.redaction
    assert red != RedactionPolicy()
    assert red.secrets and red.emails and red.phone_numbers and red.card_numbers
    [pattern] = red.patterns
    assert (pattern.name, pattern.regex) == ("customer_id", "CUST-[0-9]{6}")


# -- ${ENV} interpolation -------------------------------------------------------------------


def test_interpolation_of_set_variables_inside_text() -> None:
    text = doc(
        """
        sources:
          s:
            token: "${PREFIX}-${TOKEN}"
            hmac_secret: ${SECRET:-fallback}
        """
    )
    policy = parse_policy(text, file=FILE, env={"PREFIX": "t", "TOKEN": "abc", "SECRET": "real"})
    assert policy.sources["s"].token == "t-abc"
    assert policy.sources["s"].hmac_secret == "real"  # set beats the default


def test_interpolation_of_unset_variables_with_defaults() -> None:
    text = doc(
        """
        timezone: ${TEAM_TZ:-Europe/Berlin}
        sources:
          s:
            token: ${TOKEN:-}
            hmac_secret: ${SECRET:-change-me}
        handoffs:
          lease: ${LEASE:-20m}
        """
    )
    policy = parse_policy(text, file=FILE, env={})
    assert policy.timezone == "Europe/Berlin"
    assert policy.sources["s"].token == ""
    assert policy.sources["s"].hmac_secret == "change-me"
    assert policy.handoffs.lease == timedelta(minutes=20)  # the value is validated after


def test_text_that_is_not_a_variable_reference_is_left_alone() -> None:
    text = doc(
        """
        people:
          alice: {name: "costs $5 a day, $HOME, ${not closed, $${x:-y}"}
        """
    )
    policy = parse_policy(text, file=FILE, env={"HOME": "/root"})
    assert policy.people["alice"].name == "costs $5 a day, $HOME, ${not closed, $y"


def test_unset_variable_without_default_names_the_field_and_the_variable() -> None:
    text = doc(
        """
        timezone: UTC
        sources:
          alertmanager:
            kind: alertmanager
            token: ${ALERTMANAGER_TOKEN}
        """
    )
    problem = only_problem(text)
    assert_problem(
        problem,
        path="sources.alertmanager.token",
        line=line_of(text, "token:"),
        says=("ALERTMANAGER_TOKEN", "not set"),
    )


def test_unset_variable_in_a_list_item_and_other_problems_are_reported_together() -> None:
    text = doc(
        """
        people:
          alice:
            slack_id: ${ALICE_SLACK_ID}
        roles:
          responders:
            - alice
            - ${ONCALL_PERSON}
        workflows:
          x: {categroy: internal}
        """
    )
    found = problems(text)
    assert [p.path for p in found] == [
        "people.alice.slack_id",
        "roles.responders.1",
        "workflows.x.categroy",
    ]
    assert_problem(
        found[0], path="people.alice.slack_id", line=3, says=("ALICE_SLACK_ID", "not set")
    )
    # the empty stand-in value is not reported again as a malformed Slack id
    assert_problem(found[1], path="roles.responders.1", line=7, says=("ONCALL_PERSON",))
    assert_problem(found[2], path="workflows.x.categroy", line=9, says=("unknown key",))


def test_interpolated_value_is_validated() -> None:
    text = "timezone: ${TEAM_TZ:-Mars/Olympus_Mons}\n"
    assert_problem(
        only_problem(text),
        path="timezone",
        line=1,
        says=("unknown time zone 'Mars/Olympus_Mons'",),
    )
    assert parse_policy(text, file=FILE, env={"TEAM_TZ": "Asia/Tokyo"}).timezone == "Asia/Tokyo"


# -- each error class the issue names -----------------------------------------------------


def test_unknown_top_level_time_zone() -> None:
    text = doc(
        """
        # our team
        timezone: Europe/Berlinn
        """
    )
    assert_problem(
        only_problem(text),
        path="timezone",
        line=2,
        says=("unknown time zone 'Europe/Berlinn'", "IANA"),
    )


def test_unknown_time_zone_in_a_schedule_and_in_a_rotation_layer() -> None:
    text = doc(
        """
        people:
          alice: {}
        schedules:
          primary:
            timezone: Berlin
            layers:
              - users: [alice]
                timezone: PST
        """
    )
    found = problems(text)
    assert len(found) == 2
    assert_problem(
        found[0],
        path="schedules.primary.timezone",
        line=line_of(text, "timezone: Berlin"),
        says=("unknown time zone 'Berlin'",),
    )
    assert_problem(
        found[1],
        path="schedules.primary.layers.0.timezone",
        line=line_of(text, "timezone: PST"),
        says=("unknown time zone 'PST'",),
    )


def test_unknown_time_zone_in_business_hours() -> None:
    text = doc(
        """
        business_hours:
          days: [0, 1, 2, 3, 4]
          timezone: Europe/Atlantis
        """
    )
    assert_problem(
        only_problem(text),
        path="business_hours.timezone",
        line=3,
        says=("unknown time zone 'Europe/Atlantis'",),
    )


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ('workflows: {x: "oops"}\n', 1, ("mapping", "'oops'")),
        ("workflows:\n  ok: {}\n  x: oops\n", 3, ("mapping", "'oops'")),
        ("workflows:\n  x: [a, b]\n", 2, ("mapping", "got a list")),
        ("workflows:\n  x:\n", 2, ("empty", "mapping")),
        ("workflows:\n  x: 42\n", 2, ("mapping", "42")),
    ],
    ids=["flow-text", "block-text", "list", "empty", "number"],
)
def test_workflow_that_is_not_a_mapping(text: str, line: int, says: tuple[str, ...]) -> None:
    assert_problem(only_problem(text), path="workflows.x", line=line, says=says)


def test_workflows_section_that_is_a_list() -> None:
    text = "workflows:\n  - email-summarizer\n"
    assert_problem(only_problem(text), path="workflows", line=1, says=("mapping", "got a list"))


def test_workflow_owner_that_is_not_a_person() -> None:
    text = doc(
        """
        people:
          alice: {slack_id: U0ALICE001}
        workflows:
          chatbot:
            category: customer-facing
            owner: alcie
        """
    )
    assert_problem(
        only_problem(text),
        path="workflows.chatbot.owner",
        line=line_of(text, "owner:"),
        says=("'alcie' is not defined under people", "did you mean 'alice'?"),
    )


def test_role_members_must_be_people_or_user_groups() -> None:
    text = doc(
        """
        people:
          alice: {}
          bob: {}
        roles:
          ai_lead: [alice]
          founder:
            - zed
          responders: [alice, "group:S0RESPOND1", bob]
          reviewers:
            - bob
            - mallory
        """
    )
    found = problems(text)
    assert len(found) == 2
    assert_problem(
        found[0],
        path="roles.founder.0",
        line=line_of(text, "- zed"),
        says=("'zed' is not defined under people", "alice, bob"),
    )
    assert_problem(
        found[1],
        path="roles.reviewers.1",
        line=line_of(text, "- mallory"),
        says=("'mallory' is not defined under people",),
    )


def test_schedule_users_must_be_people() -> None:
    text = doc(
        """
        people:
          alice: {}
        schedules:
          primary:
            layers:
              - users: [alice]
              - users:
                  - alice
                  - ghost
        """
    )
    assert_problem(
        only_problem(text),
        path="schedules.primary.layers.1.users.1",
        line=line_of(text, "- ghost"),
        says=("'ghost' is not defined under people",),
    )


def test_escalation_targets_must_name_defined_people_and_schedules() -> None:
    text = doc(
        """
        people:
          alice: {}
        schedules:
          primary:
            layers: [{users: [alice]}]
        escalation_policies:
          default:
            steps:
              - notify:
                  - schedule: primray
              - notify:
                  - person: nobody
        """
    )
    found = problems(text)
    assert len(found) == 2
    assert_problem(
        found[0],
        path="escalation_policies.default.steps.0.notify.0.schedule",
        line=line_of(text, "schedule: primray"),
        says=("'primray' is not defined under schedules", "did you mean 'primary'?"),
    )
    assert_problem(
        found[1],
        path="escalation_policies.default.steps.1.notify.0.person",
        line=line_of(text, "person: nobody"),
        says=("'nobody' is not defined under people",),
    )


def test_workflow_escalation_policy_that_does_not_exist() -> None:
    text = doc(
        """
        escalation_policies:
          ai-default:
            steps:
              - notify: [{role: ai_lead}]
        workflows:
          chatbot:
            escalation_policy: customer-facing
          summarizer:
            escalation_policy: ai-defualt
        """
    )
    found = problems(text)
    assert len(found) == 2
    assert_problem(
        found[0],
        path="workflows.chatbot.escalation_policy",
        line=line_of(text, "customer-facing"),
        says=("'customer-facing' is not defined under escalation_policies", "ai-default"),
    )
    assert_problem(
        found[1],
        path="workflows.summarizer.escalation_policy",
        line=line_of(text, "ai-defualt"),
        says=("did you mean 'ai-default'?",),
    )


def test_escalation_policy_reference_when_none_is_defined() -> None:
    text = "workflows:\n  x:\n    escalation_policy: p1\n"
    assert_problem(
        only_problem(text),
        path="workflows.x.escalation_policy",
        line=3,
        says=("'p1' is not defined under escalation_policies", "none is defined"),
    )


def test_source_default_workflow_must_exist() -> None:
    text = "workflows:\n  known: {}\nsources:\n  am:\n    default_workflow: unknown\n"
    assert_problem(
        only_problem(text),
        path="sources.am.default_workflow",
        line=5,
        says=("'unknown' is not defined under workflows",),
    )


@pytest.mark.parametrize(
    ("text", "path", "line", "says"),
    [
        (
            "workflows:\n  x:\n    owner: null\n    categroy: internal\n",
            "workflows.x.categroy",
            4,
            ("unknown key 'categroy'", "did you mean 'category'?"),
        ),
        (
            "timezone: UTC\nworkflow:\n  x: {}\n",
            "workflow",
            2,
            ("unknown key 'workflow'", "did you mean 'workflows'?"),
        ),
        (
            "digest:\n  channel: C0AIREVIEW1\n  colour: blue\n",
            "digest.colour",
            3,
            ("unknown key 'colour'", "expected one of: channel, day, time"),
        ),
        (
            "people:\n  alice:\n    slack: U0ALICE001\n",
            "people.alice.slack",
            3,
            ("unknown key 'slack'", "did you mean 'slack_id'?"),
        ),
        (
            "schedules:\n  p:\n    layers:\n      - users: []\n        handof_time: '09:00'\n",
            "schedules.p.layers.0.handof_time",
            5,
            ("did you mean 'handoff_time'?",),
        ),
        (
            "handoffs:\n  sla:\n    robot: {time_to_claim: 1h, time_to_decide: 2h}\n",
            "handoffs.sla.robot",
            3,
            ("unknown key 'robot'", "'review' or 'human'"),
        ),
    ],
    ids=["workflow-field", "top-level-section", "no-close-match", "person", "layer", "sla-tier"],
)
def test_unknown_key(text: str, path: str, line: int, says: tuple[str, ...]) -> None:
    assert_problem(only_problem(text), path=path, line=line, says=says)


@pytest.mark.parametrize(
    ("text", "path", "line", "says"),
    [
        (
            "workflows:\n  x:\n    category: customer_facing\n",
            "workflows.x.category",
            3,
            ("'customer-facing', 'internal', 'developer-tooling' or 'analytics'",),
        ),
        ("people:\n  a:\n    slack_id: alice\n", "people.a.slack_id", 3, ("Slack user id",)),
        ("people:\n  a:\n    email: nope\n", "people.a.email", 3, ("email address",)),
        ("workflows:\n  x:\n    channel: general\n", "workflows.x.channel", 3, ("channel",)),
        ("handoffs:\n  auto_threshold: 3\n", "handoffs.auto_threshold", 2, ("at most 1",)),
        ("handoffs:\n  lease: forever\n", "handoffs.lease", 2, ("invalid duration 'forever'",)),
        ("roles:\n  ai_lead: alice\n", "roles.ai_lead", 2, ("expected a list", "'alice'")),
        ("severity:\n  error_rate_p1: high\n", "severity.error_rate_p1", 2, ("a number",)),
        ("digest:\n  time: '25:00'\n", "digest.time", 2, ("time of day", "'25:00'")),
        ("schedules:\n  p:\n    timezone: UTC\n", "schedules.p.layers", 2, ("required",)),
        (
            "people: {a: {}}\nescalation_policies:\n  p:\n    steps:\n"
            "      - notify: [{person: a, role: founder}]\n",
            "escalation_policies.p.steps.0.notify.0",
            5,
            ("exactly one of",),
        ),
    ],
    ids=[
        "category",
        "slack-id",
        "email",
        "channel",
        "bound",
        "duration",
        "list",
        "number",
        "time",
        "missing",
        "target",
    ],
)
def test_malformed_values_read_well(text: str, path: str, line: int, says: tuple[str, ...]) -> None:
    assert_problem(only_problem(text), path=path, line=line, says=says)


def test_workflow_names_that_look_like_validator_tags_keep_their_path() -> None:
    text = "workflows:\n  function-after:\n    categroy: x\n  'a[key]': oops\n"
    found = problems(text)
    assert [(p.path, p.line) for p in found] == [
        ("workflows.function-after.categroy", 3),
        ("workflows.a[key]", 4),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("timezone: UTC\nworkflows: [a,\nsources: {}\n", 4),
        ("people:\n  alice: {name: Alice\n", 3),
        ("timezone: UTC\nroles:\n  ai_lead: x: y\n", 3),
        ("timezone: UTC\n\tpeople: {}\n", 2),
    ],
    ids=["unclosed-list", "unclosed-mapping", "nested-colon", "tab"],
)
def test_invalid_yaml(text: str, line: int) -> None:
    problem = only_problem(text)
    assert problem.line == line and problem.path == ""
    assert str(problem).startswith(f"{FILE}:{line}: not valid YAML: ")
    assert "<unicode string>" not in str(problem) and "\n" not in str(problem)


@pytest.mark.parametrize(
    ("text", "line", "got"),
    [
        ("- timezone: UTC\n- people: {}\n", 1, "got a list"),
        ("# a comment\n\njust some text\n", 3, "got the text 'just some text'"),
        ("42\n", 1, "got the number 42"),
    ],
)
def test_document_that_is_not_a_mapping(text: str, line: int, got: str) -> None:
    problem = only_problem(text)
    assert problem.line == line
    assert str(problem).startswith(f"{FILE}:{line}: the policy file must be a mapping")
    assert got in problem.message


def test_empty_file_means_the_defaults() -> None:
    assert parse_policy("", file=FILE, env={}) == Policy()
    assert parse_policy("# nothing yet\n", file=FILE, env={}) == Policy()


def test_duplicate_key_is_reported_instead_of_silently_dropping_a_section() -> None:
    text = doc(
        """
        workflows:
          a: {category: internal}
        timezone: UTC
        workflows:
          b: {category: analytics}
        """
    )
    assert_problem(
        only_problem(text),
        path="workflows",
        line=4,
        says=("duplicate key 'workflows'", "first on line 1"),
    )


def test_several_problems_are_reported_together_in_file_order() -> None:
    text = doc(
        """
        timezone: Mars/Base
        people:
          alice: {slack_id: U0ALICE001}
        roles:
          ai_lead: [alicia]
        workflows:
          summarizer: "oops"
          chatbot:
            owner: alice
            escalaton_policy: default
        schedules:
          primary:
            timezone: Moon/Crater
            layers:
              - users: [alice, bob]
        """
    )
    found = problems(text)
    assert [(p.line, p.path) for p in found] == [
        (1, "timezone"),
        (5, "roles.ai_lead.0"),
        (7, "workflows.summarizer"),
        (10, "workflows.chatbot.escalaton_policy"),
        (13, "schedules.primary.timezone"),
        (15, "schedules.primary.layers.0.users.1"),
    ]
    for problem in found:
        assert_problem(problem, path=problem.path, line=problem.line or 0, says=())


def test_unquoted_clock_times_and_dates_are_read_as_written() -> None:
    # YAML 1.1 reads 18:00 as the base-60 integer 1080, which would become 00:18
    text = doc(
        """
        people:
          alice: {}
        business_hours:
          start: 08:30
          end: 18:00
        schedules:
          p:
            layers:
              - users: [alice]
                handoff_time: 18:00
                start: 2026-01-05
        digest:
          time: 10:15
        """
    )
    policy = parse_policy(text, file=FILE, env={})
    assert (policy.hours.start, policy.hours.end) == (time(8, 30), time(18))
    layer = policy.schedules["p"].layers[0]
    assert layer.handoff_time == time(18) and layer.start == "2026-01-05"
    assert policy.digest.time == time(10, 15)


def test_models_still_refuse_undefined_references_when_built_directly() -> None:
    with pytest.raises(ValidationError, match="'ghost' is not defined under people"):
        Policy.model_validate({"roles": {"ai_lead": ["ghost"]}})


def test_load_policy_names_the_path_and_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_policy(tmp_path / "absent.yml", {}) == Policy()
    broken = tmp_path / "ai-incident.yml"
    broken.write_text("timezone: Nowhere\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(broken, {})
    assert str(info.value).startswith(f"{broken}:1: timezone: unknown time zone 'Nowhere'")


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("kind: agent\n    hmac_secret: s\n", "always carries its timestamp"),
        ("kind: grafana\n    token: t\n", "needs hmac_secret"),
    ],
    ids=["agent", "no-secret"],
)
def test_require_timestamp_is_for_grafana_signatures(source: str, says: str) -> None:
    text = f"sources:\n  s:\n    {source}    require_timestamp: true\n"
    assert_problem(
        only_problem(text),
        path="sources.s.require_timestamp",
        line=line_of(text, "require_timestamp"),
        says=(says,),
    )
    fine = "sources:\n  s:\n    kind: grafana\n    hmac_secret: s\n    require_timestamp: true\n"
    assert parse_policy(fine, file=FILE, env={}).sources["s"].require_timestamp is True


def test_a_watch_alias_names_one_workflow_only() -> None:
    text = doc(
        """
        workflows:
          support-bot:
            watch:
              alias: [chat-prod]
          billing:
            watch:
              alias: [chat-prod]
        """
    )
    assert_problem(
        only_problem(text),
        path="workflows.billing.watch.alias.0",
        line=line_of(text, "alias: [chat-prod]") + 3,
        says=("'chat-prod' is already an alias of workflow 'support-bot'",),
    )
    policy = parse_policy(
        doc("workflows:\n  support-bot:\n    watch:\n      alias: chat-prod\n"), file=FILE, env={}
    )
    assert policy.watched_workflow("chat-prod") == "support-bot"
    assert policy.watched_workflow("something-else") == "something-else"


def test_run_ids_are_remembered_no_longer_than_the_minutes() -> None:
    text = doc(
        """
        watch:
          retention:
            minutes: 7d
            run_ids: 10d
        """
    )
    problem = only_problem(text)
    assert problem.path == "watch.retention" and "run_ids cannot be longer than minutes" in str(
        problem
    )
