"""The one error handler of the Bolt app: what a listener raised becomes a sentence for the user.

Listeners acknowledge first and then do the work without guarding it. A refusal the use cases
raise (`DomainError`, `CommandError`) is a sentence fit to show: the user gets it ephemerally.
A database that does not answer is said to be unavailable. Anything else is a bug: it is logged
with its trace and the user is told it was, never shown it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.domain.commands import CommandError
from bot.rendering.cards import DECLARE_VIEW_ID
from bot.rendering.handoffs import EDIT_VIEW_ID, REJECT_VIEW_ID
from bot.services.errors import DomainError
from handlers.slack.views import form_channel
from storage.db import StorageUnavailable

__all__ = [
    "FAILED",
    "REFUSALS",
    "STORAGE_DOWN",
    "UNAVAILABLE",
    "answering",
    "failure_text",
    "handle_listener_error",
]

log = logging.getLogger(__name__)

# errors whose message is meant for the user who asked
REFUSALS: tuple[type[Exception], ...] = (DomainError, CommandError)
STORAGE_DOWN: tuple[type[Exception], ...] = (StorageUnavailable, OperationalError, InterfaceError)
UNAVAILABLE = "The incident database is unavailable right now; try again in a minute."

FAILED = {
    "block_actions": "Something went wrong on our side with that button; it has been logged.",
    "command": "Something went wrong on our side while running that command; it has been logged.",
    DECLARE_VIEW_ID: (
        "Something went wrong on our side while declaring that incident; it has been logged."
    ),
    EDIT_VIEW_ID: (
        "Something went wrong on our side while recording that decision; it has been logged."
    ),
    REJECT_VIEW_ID: (
        "Something went wrong on our side while recording that decision; it has been logged."
    ),
}
FAILED_DEFAULT = "Something went wrong on our side; it has been logged."


def _kind(body: dict[str, Any]) -> str:
    """Name what the user did: a button, a command, or the form (by its callback id)."""
    if "command" in body:
        return "command"
    if body.get("type") == "view_submission":
        return str((body.get("view") or {}).get("callback_id", ""))
    return str(body.get("type", ""))


def failure_text(error: Exception, body: dict[str, Any]) -> str:
    """Return what to tell the user about `error`: the refusal itself, or that it was logged."""
    if isinstance(error, CommandError):
        return f"{error.message}\nUsage: `{error.usage}`"
    if isinstance(error, REFUSALS):
        return str(error)
    if isinstance(error, STORAGE_DOWN):
        return UNAVAILABLE
    return FAILED.get(_kind(body), FAILED_DEFAULT)


def _tell(body: dict[str, Any], text: str, respond: Respond | None, client: WebClient) -> None:
    user = str((body.get("user") or {}).get("id") or body.get("user_id") or "")
    if body.get("response_url") and respond is not None:
        if body.get("type") == "block_actions":
            respond(text=text, response_type="ephemeral", replace_original=False)
        else:
            respond(text=text, response_type="ephemeral")
        return
    channel = form_channel(body.get("view") or {})
    if channel is not None and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    # an event (a thread reply) has nobody to answer: the log is all


def handle_listener_error(
    error: Exception, body: dict[str, Any], respond: Respond | None, client: WebClient
) -> None:
    """Bolt's error handler: log, then tell the user in a sentence (never a trace)."""
    kind = _kind(body) or "request"
    if isinstance(error, REFUSALS):
        log.info("Slack %s refused: %s", kind, error)
    elif isinstance(error, STORAGE_DOWN):
        log.warning("Slack %s not done, database unavailable: %s", kind, error)
    else:
        log.error("Slack %s failed", kind, exc_info=error)
    try:
        _tell(body, failure_text(error, body), respond, client)
    except SlackApiError as exc:
        log.warning("could not tell the user why: %s", exc.response.get("error"))
    except (SlackClientError, OSError) as exc:
        log.warning("could not tell the user why: %s", exc)


def answering(listener: Callable[..., None]) -> Callable[..., None]:
    """Register `listener` so that what it raises reaches `handle_listener_error` at once.

    Bolt's own route to the error handler (`app.error`, kept for errors elsewhere) forgets an
    ack the listener already sent when it raises within Bolt's 10 ms look at the ack: the user
    would see Slack's "trouble connecting" after 3 s on top of the answer. The listener must
    take `body` and `context`; Bolt passes what the listener names (it reads past this wrapper).
    """

    @functools.wraps(listener)
    def run(**kwargs: Any) -> None:
        try:
            listener(**kwargs)
        except Exception as error:  # the one place a listener's failure is answered
            context: BoltContext = kwargs["context"]
            handle_listener_error(error, kwargs["body"], context.respond, context.client)

    return run
