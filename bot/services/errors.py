"""Typed errors of the use cases; each edge turns them into its own answer once.

DomainError
  IncidentNotFound      -- no incident with that id
  InvalidTransition     -- the incident's state does not allow the action
  NotAResponder         -- the actor lacks the responder role the action needs
  ReasonRequired        -- the action needs a reason and got none
  UnknownWorkflow       -- the policy file defines no workflow of that name
"""

from __future__ import annotations

__all__ = [
    "DomainError",
    "IncidentNotFound",
    "InvalidTransition",
    "NotAResponder",
    "ReasonRequired",
    "UnknownWorkflow",
]


class DomainError(Exception):
    """A use case refused; the message is a sentence fit to show a user."""


class IncidentNotFound(DomainError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"There is no incident INC-{incident_id}.")
        self.incident_id = incident_id


class InvalidTransition(DomainError):
    def __init__(self, incident_id: int, state: str, action: str) -> None:
        super().__init__(f"INC-{incident_id} is {state}; it cannot be {action}.")
        self.incident_id = incident_id
        self.state = state
        self.action = action


class NotAResponder(DomainError):
    def __init__(self, user: str, action: str) -> None:
        super().__init__(
            f"Only responders can {action}; you are not listed under roles.responders "
            "in the policy file."
        )
        self.user = user
        self.action = action


class ReasonRequired(DomainError):
    def __init__(self, action: str) -> None:
        super().__init__(f"Give a reason to {action}.")
        self.action = action


class UnknownWorkflow(DomainError):
    def __init__(self, workflow: str, known: list[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"There is no workflow {workflow!r} in the policy file (workflows: {names})."
        )
        self.workflow = workflow
