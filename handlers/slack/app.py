"""Build the Bolt app (HTTP mode) and hand Slack's requests to it off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.handoffs.runner import HandoffRunner
from bot.rendering.cards import DECLARE_VIEW_ID
from bot.rendering.handoffs import EDIT_VIEW_ID, REJECT_VIEW_ID
from bot.services.commands import CommandRunner
from handlers.slack.actions import ACTIONS, handle_card_action
from handlers.slack.commands import COMMAND, handle_slash_command
from handlers.slack.errors import answering, handle_listener_error
from handlers.slack.events import handle_message_event
from handlers.slack.handoff_actions import HANDOFF_ACTIONS, handle_handoff_action
from handlers.slack.handoff_views import (
    handle_handoff_edit_submission,
    handle_handoff_reject_submission,
)
from handlers.slack.views import handle_declare_submission

__all__ = ["build_bolt_app", "dispatch"]

log = logging.getLogger(__name__)


def build_bolt_app(
    *,
    client: WebClient,
    commands: CommandRunner,
    handoffs: HandoffRunner | None = None,
) -> App:
    """Return the Bolt app; services reach listeners through `context`.

    Bolt checks no signatures: `dispatch` verifies each HTTP request before Bolt sees it, and
    Socket Mode's connection is itself authenticated.
    """
    token = client.token or ""

    def authorize(**_: Any) -> AuthorizeResult:
        # one workspace, one bot token: no auth.test on the request path, whatever Slack's latency
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=token)

    app = App(
        client=client,
        # Bolt's own check would log the body of every badly signed request
        signing_secret="",
        request_verification_enabled=False,
        authorize=authorize,
        raise_error_for_unhandled_request=False,
    )

    def services(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["commands"] = commands
        context["handoffs"] = handoffs
        return next()

    app.use(services)
    # listeners ack first and raise what goes wrong; this one handler answers the user
    app.error(handle_listener_error)
    app.command(COMMAND)(answering(handle_slash_command))
    for action_id in ACTIONS:
        app.action(action_id)(answering(handle_card_action))
    app.event("message")(answering(handle_message_event))
    app.view(DECLARE_VIEW_ID)(answering(handle_declare_submission))
    if handoffs is not None:
        for action_id in HANDOFF_ACTIONS:
            app.action(action_id)(answering(handle_handoff_action))
        app.view(EDIT_VIEW_ID)(answering(handle_handoff_edit_submission))
        app.view(REJECT_VIEW_ID)(answering(handle_handoff_reject_submission))
    return app


async def dispatch(app: App, request: Request, body: bytes, *, executor: Executor) -> Response:
    """Dispatch one verified Slack request on `executor`; the loop never blocks.

    The route's dependencies have checked the size limit and then the signature, both before
    Bolt sees a byte: Bolt logs the body of a request whose signature fails, and parses bodies
    before it checks them. `executor` serves Slack alone, so a database write waiting for its
    lock in the default pool never delays the ack Slack wants within 3 seconds.
    """
    try:
        bolt_request = BoltRequest(
            body=body.decode("utf-8", errors="replace"),
            query=dict(request.query_params),
            headers={k: v for k, v in request.headers.items()},
        )
        # some of Bolt's middleware assumes well-formed payloads: garbage gets a plain 400,
        # never a trace
        parsed = bolt_request.body
        if "event" in parsed and not isinstance(parsed["event"], dict):
            raise TypeError("event is not an object")
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(executor, app.dispatch, bolt_request)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("malformed Slack request refused: %s: %s", type(exc).__name__, exc)
        return Response(status_code=400, content=b"malformed Slack request")
    return Response(
        status_code=answer.status,
        content=answer.body,
        headers=answer.first_headers_without_set_cookie(),
    )
