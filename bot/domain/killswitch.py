"""Kill switches (§9), pure: flag keys, the state a workflow is in, OFREP evaluation bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "FLAG_PREFIX",
    "SwitchState",
    "evaluation",
    "flag_key",
    "workflow_of_flag",
]

FLAG_PREFIX = "workflow."
FLAG_SUFFIX = ".enabled"
_FLAG = re.compile(r"^workflow\.(?P<name>.+)\.enabled$")


def flag_key(workflow: str) -> str:
    """Return the OpenFeature flag key of a workflow's switch: `workflow.<name>.enabled`."""
    return f"{FLAG_PREFIX}{workflow}{FLAG_SUFFIX}"


def workflow_of_flag(key: str) -> str | None:
    """Return the workflow a flag key names, or None if it is not a kill-switch flag."""
    match = _FLAG.match(key)
    return match.group("name") if match else None


@dataclass(frozen=True)
class SwitchState:
    """Whether a workflow may run, and since when and why if someone decided it."""

    workflow: str
    enabled: bool
    # None while the policy file's default holds (nobody has flipped the switch)
    changed_by: str | None = None
    changed_at: datetime | None = None
    reason: str | None = None
    version: int = 0

    @property
    def is_default(self) -> bool:
        return self.changed_by is None

    @property
    def word(self) -> str:
        return "enabled" if self.enabled else "paused"


def evaluation(state: SwitchState) -> dict[str, Any]:
    """Return the OFREP evaluation of the workflow's flag.

    `cacheable` is false: a paused workflow must stop at the agent's next evaluation, not when
    a cache expires. The reason is STATIC while the policy default holds and TARGETING_MATCH
    once a person (or the P1 auto-pause) has set the switch.
    """
    metadata: dict[str, Any] = {"workflow": state.workflow, "version": state.version}
    if state.changed_by is not None:
        metadata["changed_by"] = state.changed_by
    if state.changed_at is not None:
        metadata["changed_at"] = state.changed_at.isoformat()
    if state.reason:
        metadata["reason"] = state.reason
    return {
        "key": flag_key(state.workflow),
        "value": state.enabled,
        "reason": "STATIC" if state.is_default else "TARGETING_MATCH",
        "variant": state.word,
        "metadata": metadata,
        "cacheable": False,
    }
