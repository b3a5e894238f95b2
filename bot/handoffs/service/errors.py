"""Why a handoff action was refused, each a DomainError the edges turn into one sentence."""

from __future__ import annotations

from datetime import datetime

from bot.handoffs.domain import format_handoff_id
from bot.services.errors import DomainError

__all__ = [
    "AlreadyDecided",
    "HandoffHeld",
    "HandoffNotFound",
    "NotAReviewer",
    "NotClaimed",
    "NotReviewable",
]


class HandoffNotFound(DomainError):
    def __init__(self, handoff_id: int) -> None:
        super().__init__(f"There is no handoff {format_handoff_id(handoff_id)}.")
        self.handoff_id = handoff_id


class NotAReviewer(DomainError):
    def __init__(self, user: str, action: str) -> None:
        super().__init__(
            f"Only reviewers can {action}; you are not listed under roles.reviewers in the "
            "policy file."
        )
        self.user = user
        self.action = action


class HandoffHeld(DomainError):
    """Someone else holds the lease."""

    def __init__(self, handoff_id: int, holder: str, until: datetime) -> None:
        super().__init__(
            f"{format_handoff_id(handoff_id)} is claimed by <@{holder}> until {until:%H:%M} UTC."
        )
        self.handoff_id = handoff_id
        self.holder = holder
        self.until = until


class AlreadyDecided(DomainError):
    def __init__(self, handoff_id: int, decision: str, by: str | None) -> None:
        who = f" by <@{by}>" if by else ""
        super().__init__(f"{format_handoff_id(handoff_id)} was already {decision}{who}.")
        self.handoff_id = handoff_id
        self.decision = decision


class NotReviewable(DomainError):
    """An auto-tier handoff: stored and counted, nobody reviews it."""

    def __init__(self, handoff_id: int) -> None:
        super().__init__(
            f"{format_handoff_id(handoff_id)} is in the auto tier: it is recorded, not reviewed."
        )
        self.handoff_id = handoff_id


class NotClaimed(DomainError):
    def __init__(self, handoff_id: int) -> None:
        super().__init__(f"{format_handoff_id(handoff_id)} is not claimed by you.")
        self.handoff_id = handoff_id
