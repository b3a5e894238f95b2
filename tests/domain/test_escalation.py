"""Escalation with `now` passed in: snapshots, step selection, repeat exhaustion, who is reached."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import (
    EscalationPolicy,
    EscalationStep,
    EscalationTarget,
    Person,
    Policy,
    Roles,
    Rotation,
    Schedule,
    Workflow,
)
from bot.domain.calendar import BusinessHours
from bot.paging.escalation import (
    BUILTIN_POLICY_NAME,
    EscalationState,
    Exhausted,
    Fire,
    Snapshot,
    StepSpec,
    Target,
    due_now,
    next_open,
    next_step,
    policy_for,
    resolve_targets,
    start,
    take_snapshot,
    unreachable_people,
)
from tests.conftest import example_policy

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def snap(waits: list[int], repeat: int = 0) -> Snapshot:
    return Snapshot(
        policy="p",
        steps=tuple(
            StepSpec(
                targets=(Target("person", f"p{i}"),),
                channels=("slack_dm",),
                wait=timedelta(minutes=w),
            )
            for i, w in enumerate(waits)
        ),
        repeat=repeat,
        timezone="UTC",
    )


def run_until_exhausted(s: Snapshot, ticks: list[datetime]) -> list[tuple[int, int, datetime]]:
    """Tick at the given instants; return (round, step, at) of each firing."""
    state = start(T0)
    fired: list[tuple[int, int, datetime]] = []
    for now in ticks:
        due = next_step(s, state, now)
        if isinstance(due, Fire):
            fired.append((due.round, due.index, now))
            state = due.after
        elif isinstance(due, Exhausted):
            break
    return fired


# -- step selection ---------------------------------------------------------------------------


def test_steps_fire_in_order_after_each_wait_then_repeat_then_exhaust() -> None:
    s = snap([10, 20], repeat=1)
    state = start(T0)
    first = next_step(s, state, T0)
    assert isinstance(first, Fire) and (first.round, first.index) == (0, 0)
    assert first.describe(s) == "step 1 of 2, round 1 of 2"
    state = first.after
    assert state == EscalationState(step=1, round=0, next_at=T0 + timedelta(minutes=10))
    assert next_step(s, state, T0 + timedelta(minutes=9, seconds=59)) is None
    second = next_step(s, state, T0 + timedelta(minutes=10))
    assert isinstance(second, Fire) and (second.round, second.index) == (0, 1)
    state = second.after
    assert state == EscalationState(step=0, round=1, next_at=T0 + timedelta(minutes=30))
    third = next_step(s, state, T0 + timedelta(minutes=30))
    assert isinstance(third, Fire) and (third.round, third.index) == (1, 0)
    fourth = next_step(s, third.after, T0 + timedelta(minutes=40))
    assert isinstance(fourth, Fire) and (fourth.round, fourth.index) == (1, 1)
    assert fourth.after.next_at == T0 + timedelta(minutes=60)
    # the last step's wait still runs before the escalation is called exhausted
    assert next_step(s, fourth.after, T0 + timedelta(minutes=59)) is None
    done = next_step(s, fourth.after, T0 + timedelta(minutes=60))
    assert isinstance(done, Exhausted) and done.rounds == 2
    # and it stays exhausted
    assert isinstance(next_step(s, fourth.after, T0 + timedelta(days=1)), Exhausted)


def test_without_repeat_one_round_then_exhausted() -> None:
    s = snap([5])
    fired = run_until_exhausted(s, [T0 + timedelta(minutes=m) for m in range(0, 60)])
    assert fired == [(0, 0, T0)]
    only = next_step(s, start(T0), T0)
    assert isinstance(only, Fire) and only.describe(s) == "step 1 of 1"
    assert isinstance(next_step(s, only.after, T0 + timedelta(minutes=5)), Exhausted)


def test_a_policy_without_steps_is_exhausted_at_once() -> None:
    assert isinstance(next_step(snap([]), start(T0), T0), Exhausted)


def test_a_late_tick_fires_the_due_step_once_and_the_next_waits_its_full_wait() -> None:
    # the bot was down for an hour: step 2 fires on restart, step 3 a full wait after that
    s = snap([10, 10, 10])
    state = start(T0)
    first = next_step(s, state, T0)
    assert isinstance(first, Fire)
    late = T0 + timedelta(hours=1)
    second = next_step(s, first.after, late)
    assert isinstance(second, Fire) and second.index == 1
    assert second.after.next_at == late + timedelta(minutes=10)
    assert next_step(s, second.after, late + timedelta(minutes=9)) is None


@settings(max_examples=200, deadline=None)
@given(
    waits=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    repeat=st.integers(0, 3),
    gaps=st.lists(st.integers(1, 400), min_size=1, max_size=300),
)
def test_whatever_the_ticks_every_step_fires_once_in_order_and_never_early(
    waits: list[int], repeat: int, gaps: list[int]
) -> None:
    s = snap(waits, repeat)
    ticks = [T0]
    for g in gaps:
        ticks.append(ticks[-1] + timedelta(seconds=g * 10))
    fired = run_until_exhausted(s, ticks)
    expected = [(r, i) for r in range(repeat + 1) for i in range(len(waits))]
    assert [(r, i) for r, i, _ in fired] == expected[: len(fired)]
    for (_, i, at), (_, _, then) in pairwise(fired):
        assert then - at >= timedelta(minutes=waits[i])


# -- snapshots --------------------------------------------------------------------------------


def test_snapshot_holds_steps_schedules_roles_and_people_and_survives_json() -> None:
    policy = example_policy()
    s = take_snapshot(policy, "email-summarizer")
    assert s.policy == "ai-default" and s.repeat == 1 and s.timezone == "Europe/Berlin"
    assert [st.channels for st in s.steps] == [("slack_dm", "pagerduty"), ("slack_dm", "opsgenie")]
    assert s.steps[0].targets == (Target("schedule", "primary"),)
    assert s.steps[0].wait == timedelta(minutes=10)
    assert set(s.schedules) == {"primary"}
    assert s.schedules["primary"].timezone == "Europe/Berlin"
    assert s.roles["ai_lead"] == ("alice",) and s.roles["founder"] == ("carol",)
    assert set(s.people) == {"alice", "bob", "carol"}
    assert s.people["bob"].slack_id == "U0BOB00002"
    stored = json.loads(json.dumps(s.to_json()))
    again = Snapshot.from_json(stored)
    assert again == s
    layer = again.schedules["primary"].layers[1]
    assert layer.custom_period == timedelta(days=3) and layer.restrict is not None


def test_a_snapshot_does_not_change_when_the_policy_file_does() -> None:
    policy = example_policy()
    stored = json.dumps(take_snapshot(policy, "support-chatbot").to_json())
    edited = policy.model_copy(
        update={
            "escalation_policies": {
                **policy.escalation_policies,
                "customer-facing": EscalationPolicy(
                    steps=[EscalationStep(notify=[EscalationTarget(person="bob")], wait="1h")]
                ),
            },
            "roles": Roles(ai_lead=["bob"], founder=["bob"]),
        }
    )
    running = Snapshot.from_json(json.loads(stored))
    assert len(running.steps) == 2 and running.steps[0].wait == timedelta(minutes=5)
    assert running.roles["founder"] == ("carol",)
    fresh = take_snapshot(edited, "support-chatbot")
    assert len(fresh.steps) == 1 and fresh.roles["founder"] == ("bob",)


def test_which_policy_a_workflow_follows() -> None:
    policy = example_policy()
    assert policy_for(policy, "support-chatbot")[0] == "customer-facing"
    # a workflow naming none, and an unknown workflow, follow default_escalation_policy
    assert policy_for(policy, "weekly-report")[0] == "ai-default"
    assert policy_for(policy, "not-in-the-file")[0] == "ai-default"
    bare = Policy(roles=Roles(ai_lead=["al"]), people={"al": Person(slack_id="U0AL00001")})
    name, builtin = policy_for(bare, "anything")
    assert name == BUILTIN_POLICY_NAME
    assert builtin.steps[0].notify[0].role == "ai_lead" and builtin.repeat == 2
    s = take_snapshot(bare, "anything")
    assert s.people["al"].slack_id == "U0AL00001"


# -- who a step reaches -----------------------------------------------------------------------


def test_resolve_targets_schedules_people_roles_and_groups() -> None:
    s = Snapshot(
        policy="p",
        steps=(),
        repeat=0,
        timezone="UTC",
        schedules={
            "a": Schedule(layers=[Rotation(users=["ann"])]),
            "empty": Schedule(layers=[]),
        },
        roles={"ai_lead": ("ann", "group:S0LEADS01"), "founder": ()},
    )
    on_call = {"a": "ann", "empty": None}
    reach = resolve_targets(
        s,
        [
            Target("schedule", "a"),
            Target("person", "ben"),
            Target("role", "ai_lead"),
            Target("user_group", "S0OPS0001"),
            Target("schedule", "empty"),
            Target("role", "founder"),
            Target("schedule", "gone"),
        ],
        on_call.get,
    )
    assert reach.people == ("ann", "ben")  # ann once, though reached twice
    assert reach.groups == ("S0LEADS01", "S0OPS0001")
    assert reach.gaps == (
        "nobody is on call in schedule empty",
        "nobody holds role founder",
        "schedule gone is not defined",
    )


def test_contact_of_people_outside_the_snapshot() -> None:
    s = take_snapshot(example_policy(), "email-summarizer")
    assert s.contact("U0OTHER01").slack_id == "U0OTHER01"
    assert s.contact("nobody-known").slack_id is None
    assert s.contact("alice").email == "alice@example.com"


# -- business hours ---------------------------------------------------------------------------


def test_next_open_is_now_in_hours_and_the_next_opening_outside() -> None:
    hours = BusinessHours(timezone="Europe/Berlin", start="09:00", end="18:00")
    monday_noon = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
    assert next_open(hours, monday_noon) == monday_noon
    friday_evening = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert next_open(hours, friday_evening) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


# -- who cannot be reached --------------------------------------------------------------------


def test_unreachable_people_are_paging_targets_without_slack_id_or_provider() -> None:
    policy = Policy(
        people={"ann": Person(slack_id="U0ANN0001"), "dan": Person(email="dan@example.com")},
        roles=Roles(founder=["dan"], reviewers=["dan"]),
        schedules={"s": Schedule(layers=[Rotation(users=["ann", "dan"])])},
        escalation_policies={
            "p": EscalationPolicy(steps=[EscalationStep(notify=[EscalationTarget(person="dan")])])
        },
        workflows={"w": Workflow(escalation_policy="p")},
    )
    [dan] = unreachable_people(policy)
    assert dan.person == "dan"
    assert dan.where == (
        "escalation_policies.p.steps.0.notify.0.person",
        "roles.founder.0",
        "schedules.s.layers.0.users.1",
    )
    with_provider = policy.model_copy(
        update={"paging": policy.paging.model_copy(update={"webhook_url": "http://x"})}
    )
    assert unreachable_people(with_provider) == []
    assert unreachable_people(example_policy()) == []


# -- everything due at one tick ----------------------------------------------------------------


def test_due_now_fires_what_is_due_and_keeps_the_next_steps_time() -> None:
    s = snap([10, 20], repeat=1)
    first = due_now(s, start(T0), T0)
    assert [(f.round, f.index) for f in first.fires] == [(0, 0)]
    assert first.state == EscalationState(step=1, round=0, next_at=T0 + timedelta(minutes=10))
    assert not first.waits and first.exhausted is None
    # nothing before the wait is over
    early = due_now(s, first.state, T0 + timedelta(minutes=9, seconds=59))
    assert early.fires == () and early.state == first.state
    # a tick long after: one step fires, the next one waits its full wait from now
    late = T0 + timedelta(hours=1)
    after = due_now(s, first.state, late)
    assert [(f.round, f.index) for f in after.fires] == [(0, 1)]
    assert after.state == EscalationState(step=0, round=1, next_at=late + timedelta(minutes=20))


def test_due_now_says_when_the_escalation_is_exhausted() -> None:
    s = snap([5])
    fired = due_now(s, start(T0), T0)
    done = due_now(s, fired.state, T0 + timedelta(minutes=5))
    assert done.fires == () and done.exhausted == Exhausted(rounds=1)
    assert due_now(snap([]), start(T0), T0).exhausted == Exhausted(rounds=0)


def test_due_now_outside_business_hours_waits_for_the_next_opening() -> None:
    hours = BusinessHours(timezone="Europe/Berlin", start="09:00", end="18:00")
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    s = snap([10])
    waiting = due_now(s, start(saturday), saturday, hours)
    assert waiting.waits and waiting.fires == ()
    # Monday 09:00 in Berlin
    assert waiting.state == EscalationState(0, 0, datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    opened = due_now(s, waiting.state, waiting.state.next_at, hours)
    assert not opened.waits and [f.index for f in opened.fires] == [0]
    # without business hours the same step fires at once
    assert [f.index for f in due_now(s, start(saturday), saturday).fires] == [0]


# -- the channel registry ---------------------------------------------------------------------


def test_the_registry_names_every_channel_once_and_the_policy_reads_it() -> None:
    from bot.paging.channels import (
        CHANNEL_LABELS,
        CHANNEL_NAMES,
        PERSON_CHANNELS,
        PROVIDER_CHANNELS,
        PROVIDERS,
        paging_keys,
    )
    from bot.paging.policy import PagingProviders
    from storage.pages import KINDS

    assert ("slack_dm", *PROVIDER_CHANNELS) == CHANNEL_NAMES
    assert PROVIDER_CHANNELS == ("pagerduty", "opsgenie", "webhook")
    assert CHANNEL_LABELS["pagerduty"] == "PagerDuty" and CHANNEL_LABELS["slack_dm"] == "Slack DM"
    # PagerDuty pages whoever its own service's schedule names, not one person
    assert PERSON_CHANNELS == ("slack_dm", "opsgenie", "webhook")
    assert {name: f"page.{name}" for name in CHANNEL_NAMES} == KINDS
    assert all(p.factory and p.keys for p in PROVIDERS)
    # the policy file's `paging` keys are the registrations' keys and secrets
    assert (
        tuple(PagingProviders.model_fields)
        == paging_keys()
        == (
            "pagerduty_routing_key",
            "opsgenie_api_key",
            "webhook_url",
            "webhook_secret",
        )
    )


def test_what_is_configured_follows_the_registered_keys() -> None:
    from bot.paging.policy import PagingProviders

    none = PagingProviders()
    assert none.configured("slack_dm") and not none.configured("webhook")
    assert not none.configured("carrier_pigeon")
    assert none.person_channels() == ["slack_dm"] and not none.any_provider()
    # a secret alone configures nothing; an empty key counts as unset
    assert PagingProviders(webhook_secret="s" * 20, opsgenie_api_key="").every_channel() == [
        "slack_dm"
    ]
    some = PagingProviders(pagerduty_routing_key="k", webhook_url="https://example.com/h")
    assert some.person_channels() == ["slack_dm", "webhook"]
    assert some.every_channel() == ["slack_dm", "pagerduty", "webhook"]
    assert some.any_provider()


def test_a_step_may_name_only_a_registered_channel() -> None:
    import pytest

    from bot.config import ConfigError, parse_policy

    text = (
        "escalation_policies:\n  p:\n    steps:\n      - notify: [{role: ai_lead}]\n"
        "        channels: [slack_dm, pager]\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_policy(text, file="p.yml", env={})
    [problem] = raised.value.problems
    assert problem.path == "escalation_policies.p.steps.0.channels.1"
    assert problem.message == (
        "expected 'slack_dm', 'pagerduty', 'opsgenie' or 'webhook', got the text 'pager'"
    )
