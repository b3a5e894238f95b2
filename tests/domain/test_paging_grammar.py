"""The paging subcommands' grammar: overrides may name a schedule after the duration or times."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.domain.commands import CommandError, OnCallOverride, Page, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "oncall override @alex 2h primary",
            OnCallOverride(user_name="alex", duration=timedelta(hours=2), schedule="primary"),
        ),
        (
            "oncall override <@U1> 1h 30m night-shift",
            OnCallOverride(
                user_id="U1", duration=timedelta(hours=1, minutes=30), schedule="night-shift"
            ),
        ),
        (
            "oncall override @alex 2025-03-01T09:00 2025-03-02T09:00 primary",
            OnCallOverride(
                user_name="alex",
                start=datetime(2025, 3, 1, 9),
                end=datetime(2025, 3, 2, 9),
                schedule="primary",
            ),
        ),
        ("oncall override @alex 2h", OnCallOverride(user_name="alex", duration=timedelta(hours=2))),
        ("page oncall INC-3", Page(incident=3, oncall=True)),
    ],
)
def test_paging_commands_parse(text: str, expected: object) -> None:
    assert parse_command(text) == expected


def test_a_lone_word_is_still_read_as_a_duration() -> None:
    with pytest.raises(CommandError, match="`primary` is not a duration"):
        parse_command("oncall override @alex primary")
