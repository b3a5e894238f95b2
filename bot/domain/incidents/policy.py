"""What the incident lifecycle reads from the policy, as protocols the policy file satisfies.

The domain names only these attributes, so it never imports the policy loader (`bot.config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol

from bot.domain.calendar import BusinessHours
from bot.domain.severity import SeverityRules

__all__ = ["IncidentPolicy", "SourceRules", "WorkflowRules"]


class SourceRules(Protocol):
    @property
    def default_workflow(self) -> str | None: ...


class WorkflowRules(Protocol):
    @property
    def category(self) -> StrEnum: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def resolve_on_source_resolve(self) -> bool: ...


class IncidentPolicy(Protocol):
    @property
    def sources(self) -> Mapping[str, SourceRules]: ...
    @property
    def workflows(self) -> Mapping[str, WorkflowRules]: ...
    @property
    def default_workflow(self) -> str: ...
    @property
    def severity(self) -> SeverityRules: ...
    @property
    def hours(self) -> BusinessHours: ...
    def workflow(self, name: str) -> WorkflowRules: ...
