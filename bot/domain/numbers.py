"""Numbers that may not be finite: NaN and ±Infinity kept by name, so JSON stays standard JSON.

Prometheus renders `{{ $value }}` of 0/0 as "NaN", and Python's `json` reads the non-standard
`NaN` and `Infinity` tokens some senders write. Such a number is kept, never refused: it is
written as the string "NaN", "Infinity" or "-Infinity" wherever JSON is stored or exported
(PostgreSQL's `json` type and every strict parser refuse the bare tokens), and read back as
the float it names.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_json", "non_finite_name", "number"]

_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def non_finite_name(value: float) -> str:
    """Return "NaN", "Infinity" or "-Infinity" for a non-finite float (its repr otherwise)."""
    return _NAMES.get(repr(float(value)), repr(value))


def finite_json(value: Any) -> Any:
    """Return `value` with every non-finite float, in keys too, replaced by its name."""
    if isinstance(value, float):
        return value if math.isfinite(value) else non_finite_name(value)
    if isinstance(value, dict):
        return {finite_json(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def number(value: Any) -> float | None:
    """Read a stored number: a number, or a string naming one ("NaN", "Infinity", "0.25").

    Anything else (None, booleans, text that is no number) reads as no number at all.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
