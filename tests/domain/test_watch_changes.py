"""A workflow's change log derived from the versions seen: first appearances, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.commands import USAGE, Changes, CommandError, parse_command
from bot.domain.watch.changes import (
    Sighting,
    before,
    began_after,
    derive,
    journal_text,
    within,
)
from bot.domain.watch.history import Change, ChangeSource, VersionKind

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
MODEL, PROMPT, ERROR = VersionKind.MODEL, VersionKind.PROMPT, VersionKind.ERROR
RUNS, OTLP, ALERT = ChangeSource.RUNS, ChangeSource.OTLP, ChangeSource.ALERT


def seen(
    value: str,
    first: datetime,
    last: datetime | None = None,
    *,
    kind: VersionKind = MODEL,
    workflow: str = "support-bot",
    source: ChangeSource = RUNS,
) -> Sighting:
    return Sighting(workflow, kind, value, first, last or first, source)


def test_each_first_appearance_is_a_change_from_the_value_in_use_before_it() -> None:
    found = derive(
        [
            seen("gpt-4o-2024-11-20", T0 + 2 * H, T0 + 5 * H, source=OTLP),
            seen("gpt-4o-2024-08-06", T0, T0 + 2 * H),
        ]
    )
    assert found == [
        Change("support-bot", MODEL, None, "gpt-4o-2024-08-06", T0, RUNS),
        Change("support-bot", MODEL, "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", T0 + 2 * H, OTLP),
    ]
    assert found[1].describe() == "model gpt-4o-2024-08-06 → gpt-4o-2024-11-20"


def test_going_back_to_a_value_already_seen_is_not_a_change() -> None:
    # A from 10:00, B at 11:00, A again until 14:00: one change A → B, nothing for the return
    found = derive([seen("A", T0, T0 + 4 * H), seen("B", T0 + H, T0 + H + timedelta(minutes=5))])
    assert [(c.before, c.after) for c in found] == [(None, "A"), ("A", "B")]


def test_a_later_value_changes_from_the_one_seen_most_recently_not_the_newest() -> None:
    # B was tried at 11:00 only; A stayed in use; C at 14:00 replaces A, not B
    found = derive(
        [seen("A", T0, T0 + 4 * H), seen("B", T0 + H), seen("C", T0 + 4 * H, T0 + 6 * H)]
    )
    assert [(c.before, c.after) for c in found] == [(None, "A"), ("A", "B"), ("A", "C")]


def test_two_values_in_use_together_the_later_one_is_before_the_next() -> None:
    # A and B both still seen when C appears: B, the newer of the two, is what C follows
    found = derive(
        [seen("A", T0, T0 + 9 * H), seen("B", T0 + H, T0 + 9 * H), seen("C", T0 + 3 * H)]
    )
    assert [(c.before, c.after) for c in found][-1] == ("B", "C")


def test_kinds_and_workflows_have_their_own_logs_and_error_texts_are_not_changes() -> None:
    found = derive(
        [
            seen("summary-v12", T0, T0 + H, kind=PROMPT),
            seen("summary-v13", T0 + 2 * H, kind=PROMPT, source=ALERT),
            seen("m1", T0 + H),
            seen("m2", T0 + 3 * H, workflow="billing"),
            seen("upstream 500", T0 + H, kind=ERROR),
        ]
    )
    assert [(c.workflow, c.kind, c.before, c.after) for c in found] == [
        ("support-bot", PROMPT, None, "summary-v12"),
        ("support-bot", MODEL, None, "m1"),
        ("support-bot", PROMPT, "summary-v12", "summary-v13"),
        ("billing", MODEL, None, "m2"),
    ]
    assert found[2].source is ALERT
    assert found[2].describe() == "prompt summary-v12 → summary-v13"


def test_within_and_before_bound_the_changes_by_time() -> None:
    found = derive([seen(f"m{i}", T0 + i * H) for i in range(30)])
    assert [c.after for c in within(found, since=T0 + 2 * H, until=T0 + 4 * H)] == ["m2", "m3"]
    assert len(within(found)) == 30
    # the 24 h up to an incident at m29's instant: m5 … m29
    assert [c.after for c in before(found, T0 + 29 * H)] == [f"m{i}" for i in range(5, 30)]


def test_journal_text_says_the_change_the_input_and_the_time_in_the_team_zone() -> None:
    change = Change("w", MODEL, "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", T0 + 4 * H, RUNS)
    utc = ZoneInfo("UTC")
    assert journal_text(change, utc, T0 + 5 * H) == (
        "Model changed: gpt-4o-2024-08-06 → gpt-4o-2024-11-20 (seen in runs at 14:00 UTC)"
    )
    paris = journal_text(change, ZoneInfo("Europe/Paris"), T0 + 5 * H)
    assert paris.endswith("(seen in runs at 15:00 CET)")
    # another day: the date is said too
    assert "(seen in runs at 02 Nov 14:00 UTC)" in journal_text(change, utc, T0 + 30 * H)
    first = Change("w", PROMPT, None, "summary-v1", T0, OTLP)
    assert journal_text(first, utc, T0) == (
        "Prompt version first seen: summary-v1 (seen in OTLP metrics at 10:00 UTC)"
    )


def test_the_changes_command_takes_one_workflow_or_none() -> None:
    assert parse_command("changes") == Changes()
    known = ["support-chatbot"]
    assert parse_command("changes Support-Chatbot", known_workflows=known) == Changes(
        workflow="support-chatbot"
    )
    assert parse_command("changes other", known_workflows=known) == Changes(workflow="other")
    with pytest.raises(CommandError) as caught:
        parse_command("changes a b")
    assert caught.value.message == (
        "`changes` takes one workflow: /ai-incident changes support-chatbot"
    )
    assert caught.value.usage == USAGE["changes"]


def test_a_condition_says_which_change_it_began_after_within_24_h() -> None:
    prompt = Change("w", PROMPT, "summary-v12", "summary-v13", T0, RUNS)
    model = Change("w", MODEL, "m1", "m2", T0 - 2 * H, OTLP)
    assert began_after([prompt], T0 + timedelta(minutes=40)) == (
        "began 40 min after prompt summary-v12 → summary-v13"
    )
    assert began_after([model, prompt], T0 + 3 * H + timedelta(minutes=5)) == (
        "began 3 h 5 min after prompt summary-v12 → summary-v13 "
        "(and 1 other change in the 24 h before)"
    )
    assert began_after([prompt], T0 + 24 * H) is not None
    assert began_after([prompt], T0 + 24 * H + timedelta(minutes=1)) is None
    assert began_after([prompt], T0 - timedelta(minutes=1)) is None  # before the change
