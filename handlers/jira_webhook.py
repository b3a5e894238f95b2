"""`POST /webhooks/jira`: Jira's issue-updated events, verified, applied to incidents.

(No postponed annotations: the route's dependencies are read off its annotations.)
"""

import asyncio
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.services.tickets import TicketChange, TicketEvents
from handlers.gate import Gate
from handlers.openapi import json_body

__all__ = ["JiraWebhook", "build_jira_router", "ticket_change"]

log = logging.getLogger(__name__)

DONE_CATEGORY = "done"
ISSUE_UPDATED = "jira:issue_updated"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class JiraUser(_Model):
    accountId: str | None = None
    name: str | None = None
    displayName: str | None = None


class JiraStatusCategory(_Model):
    key: str | None = None


class JiraStatus(_Model):
    name: str | None = None
    statusCategory: JiraStatusCategory | None = None


class JiraIssueFields(_Model):
    status: JiraStatus | None = None
    assignee: JiraUser | None = None


class JiraIssue(_Model):
    key: str = Field(max_length=50)
    fields: JiraIssueFields = JiraIssueFields()


class JiraChange(_Model):
    field: str = ""
    fieldId: str | None = None
    from_: str | None = Field(default=None, alias="from")
    fromString: str | None = None
    to: str | None = None
    toString: str | None = None


class JiraChangelog(_Model):
    items: list[JiraChange] = []


class JiraWebhook(_Model):
    """The parts of a Jira webhook body the bot reads."""

    webhookEvent: str
    user: JiraUser | None = None
    issue: JiraIssue | None = None
    changelog: JiraChangelog | None = None


def ticket_change(hook: JiraWebhook) -> TicketChange | None:
    """Return what an issue-updated event says about status and assignee, or None if nothing."""
    if hook.webhookEvent != ISSUE_UPDATED or hook.issue is None or hook.changelog is None:
        return None
    status_item = next(
        (i for i in hook.changelog.items if (i.fieldId or i.field).lower() == "status"), None
    )
    assignee_item = next(
        (i for i in hook.changelog.items if (i.fieldId or i.field).lower() == "assignee"), None
    )
    if status_item is None and assignee_item is None:
        return None
    user = hook.user or JiraUser()
    account = user.accountId or user.name
    status = hook.issue.fields.status
    category = status.statusCategory.key if status and status.statusCategory else None
    return TicketChange(
        key=hook.issue.key,
        actor_account=account,
        actor_name=user.displayName or account or "someone",
        status=(status_item.toString or (status.name if status else None) or "?")
        if status_item is not None
        else None,
        status_done=category == DONE_CATEGORY,
        assignee_changed=assignee_item is not None,
        assignee=assignee_item.to if assignee_item is not None else None,
        assignee_name=assignee_item.toString if assignee_item is not None else None,
    )


def build_jira_router(
    *, events: TicketEvents, secret: str | None, max_body_bytes: int
) -> APIRouter:
    """Return the router for /webhooks/jira."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    # Jira proves itself with its own secret: no source's token opens this route
    gate = Gate(max_body_bytes=max_body_bytes)

    @router.post(
        "/jira",
        openapi_extra=json_body(JiraWebhook),
        dependencies=[Depends(gate.jira(secret))],
        responses={
            401: {"description": "bad or missing signature or secret"},
            413: {"description": "body over the size limit"},
            422: {"description": "not a Jira webhook body"},
            503: {"description": "storage unavailable; Jira retries"},
        },
    )
    async def jira(hook: Annotated[JiraWebhook, Depends(gate.parsed(JiraWebhook))]) -> JSONResponse:
        """Apply a Jira issue-updated event: done resolves the incident, assignees are journalled."""
        change = ticket_change(hook)
        if change is None:
            return JSONResponse({"status": "ignored", "event": hook.webhookEvent})
        # a database that does not answer is a 503, by the app; Jira retries
        done = await asyncio.to_thread(events.apply, change)
        log.info("Jira webhook for %s: %s", change.key, json.dumps(done))
        return JSONResponse({"status": "applied" if done else "unchanged", "done": done})

    return router
