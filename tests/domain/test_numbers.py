"""Non-finite numbers kept by name, so stored and exported JSON stays standard JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.numbers import finite_json, non_finite_name, number


def test_names_of_non_finite_numbers() -> None:
    assert [non_finite_name(x) for x in (math.nan, math.inf, -math.inf)] == [
        "NaN",
        "Infinity",
        "-Infinity",
    ]


def test_finite_json_names_every_non_finite_float_in_values_and_keys() -> None:
    value = {"a": [1.5, math.nan, (math.inf, -math.inf)], math.nan: {"b": None, "c": "NaN"}}
    assert finite_json(value) == {
        "a": [1.5, "NaN", ["Infinity", "-Infinity"]],
        "NaN": {"b": None, "c": "NaN"},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values)
def test_finite_json_is_always_standard_json(value: Any) -> None:
    json.dumps(finite_json(value), allow_nan=False)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (0.25, 0.25),
        (3, 3.0),
        ("0.25", 0.25),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        (None, None),
        (True, None),
        ("", None),
        ("high", None),
        ([1], None),
    ],
)
def test_number_reads_what_was_stored(stored: Any, expected: float | None) -> None:
    assert number(stored) == expected


def test_number_reads_nan_back() -> None:
    found = number("NaN")
    assert found is not None and math.isnan(found)
