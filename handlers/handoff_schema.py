"""Wire format of `POST /webhooks/handoffs` (§8) and its translation into a domain handoff."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from bot.handoffs.domain import HandoffIn, Reason
from handlers.schemas import AiContextIn

__all__ = ["HandoffBody"]

_TEXT = 50_000


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RequestIn(_Wire):
    """The original request the agent was working on."""

    summary: str | None = Field(default=None, max_length=2000)
    text: str | None = Field(default=None, max_length=_TEXT)
    user: str | None = Field(default=None, max_length=500)
    channel: str | None = Field(default=None, max_length=500)


class ErrorIn(_Wire):
    type: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=_TEXT)


class ActionIn(_Wire):
    name: str = Field(min_length=1, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)


class HandoffBody(AiContextIn):
    """A handoff from an AI agent (§8)."""

    # the rule of `_confidence_for_low_confidence`, for the OpenAPI document
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"reason": {"const": "low_confidence"}}, "required": ["reason"]},
            "then": {"required": ["confidence"], "properties": {"confidence": {"type": "number"}}},
        }
    )

    idempotency_key: str = Field(min_length=1, max_length=200)
    workflow: str | None = Field(default=None, min_length=1, max_length=200)
    reason: Reason
    confidence: float | None = Field(default=None, ge=0, le=1, validate_default=True)
    request: RequestIn = Field(default_factory=RequestIn)
    attempted_response: str | None = Field(default=None, max_length=_TEXT)
    error: ErrorIn | None = None
    suggested_actions: list[str] = Field(default_factory=list, max_length=50)
    proposed_action: ActionIn | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = Field(default=None, max_length=2048)

    @field_validator("suggested_actions")
    @classmethod
    def _short_actions(cls, value: list[str]) -> list[str]:
        for i, action in enumerate(value):
            if len(action) > 2000:
                raise ValueError(f"suggested action {i} is longer than 2000 characters")
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("confidence")
    @classmethod
    def _confidence_for_low_confidence(
        cls, value: float | None, info: ValidationInfo
    ) -> float | None:
        if value is None and info.data.get("reason") is Reason.LOW_CONFIDENCE:
            raise ValueError("is required when reason is low_confidence")
        return value

    def to_domain(self, *, default_workflow: str) -> HandoffIn:
        """Translate; a handoff naming no workflow is filed under the source's default."""
        workflow = self.workflow or default_workflow
        request = {k: v for k, v in self.request.model_dump().items() if v is not None}
        return HandoffIn(
            idempotency_key=self.idempotency_key,
            workflow=workflow,
            reason=self.reason,
            confidence=self.confidence,
            agent_id=self.agent.id if self.agent else None,
            agent_version=self.agent.version if self.agent else None,
            request=request,
            attempted_response=self.attempted_response,
            error=self.error.model_dump() if self.error is not None else None,
            suggested_actions=tuple(self.suggested_actions),
            proposed_action=(
                self.proposed_action.model_dump() if self.proposed_action is not None else None
            ),
            context=self.context,
            ai_context=self.ai_context_for(workflow, self.confidence),
            callback_url=self.callback_url,
        )
