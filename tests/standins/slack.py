"""A stateful stand-in for the Slack Web API on an ephemeral loopback port.

It answers the way Slack does for the methods the bot uses, keeps the messages it was sent, records
every request, and lets a test make it fail or slow down. Use it as a context manager and point a
client at `url`::

    with SlackStandin() as slack:
        client = WebClient(token="xoxb-test", base_url=slack.url)
        client.chat_postMessage(channel="#ai-incidents", text="hello")
        assert slack.messages()[0]["text"] == "hello"

Behaviour, as Slack's Web API docs (https://api.slack.com/web) and its OpenAPI spec describe it:

- Methods are served at ``/api/<method>`` for GET and POST. Parameters come from the query string
  and the body: JSON (``application/json``, as slack_sdk sends for ``chat.*``), or form-encoded (as
  slack_sdk sends for read methods). In form bodies ``blocks`` and ``metadata`` are JSON strings.
- Auth: ``Authorization: Bearer xoxb-…`` (or a ``token`` form/query parameter). No token →
  ``not_authed``; a token that is not accepted → ``invalid_auth``. Errors are HTTP 200 with
  ``{"ok": false, "error": ...}``.
- Channels: ids match ``^[CGD][A-Z0-9]{8,}$``. ``#name`` (or a bare lower-case name) maps to a
  stable generated ``C…`` id, a user id (``U…``/``W…``) to a stable DM id (``D…``). Well-formed
  ids are accepted as they come unless ``strict_channels`` is set, in which case only channels made
  with `add_channel` exist; anything else is ``channel_not_found``.
- ``ts`` values look like ``1700000000.000100`` and are unique and increasing across the workspace.
- Messages keep ``thread_ts``, ``metadata`` and ``blocks``. ``metadata`` is only returned by
  ``conversations.history``/``conversations.replies`` when ``include_all_metadata`` is true.
- Implemented: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.getPermalink``,
  ``chat.postEphemeral``, ``conversations.history``, ``conversations.replies``,
  ``conversations.open`` (a DM with one user; its id is the one `channel_id` gives the user id),
  ``files.getUploadURLExternal`` and ``files.completeUploadExternal`` (with the upload URL they
  hand out), ``usergroups.users.list`` (groups made
  with `add_usergroup`; others are ``no_such_subteam``). Others answer ``unknown_method``.

Every call is checked against Slack's published Web API spec (the excerpt in
``tests/specs/slack_web_api_excerpt.json``; see ``tests/specs/README.md``): the method exists there
or in `NEWER_METHODS` (methods the 2020 spec lacks), every required parameter is present (``token``
aside: clients send it as ``Authorization: Bearer``; `DOCUMENTED_REQUIRED` adds what Slack's method
docs require though the spec leaves it optional), and ids have the spec's formats: ``channel``
``^[CGD][A-Z0-9]{8,}$`` once ``#name``/user ids are mapped, ``user`` ``^[UW][A-Z0-9]{2,}$``,
``ts`` and ``thread_ts`` ten digits, a dot, six digits. A call that breaks these, a body that cannot
be decoded, and a method in the spec that the stand-in does not implement are each recorded in
`violations` (readable strings) and answered as Slack would (``ok: false``: ``unknown_method``,
``invalid_arguments``, ``channel_not_found``, ...). `assert_no_violations` fails a test that made
such calls; the Slack fixtures call it on teardown.

Making it misbehave (all thread-safe, callable while the bot runs):

- ``fail_next(method, status=429, retry_after=1)`` — HTTP 429 with ``Retry-After``;
  ``fail_next(method, status=500)`` — a 5xx; ``fail_next(method, error="ratelimited")`` — HTTP 200
  ``ok: false``. ``times=n`` repeats it; ``effect=True`` performs the call first and then answers
  the failure (the "request reached Slack, the answer got lost" case). ``method="*"`` matches any
  method.
- ``set_delay(seconds)`` — every answer takes that long (optionally per method, and before or after
  the call takes effect).
- ``rate_limit_per_channel = True`` — ``chat.postMessage`` is held to about one message per second
  per channel (a token bucket of ``rate_limit_burst`` messages); beyond it, HTTP 429 ``ratelimited``
  with ``Retry-After``, and nothing is posted.

Inspecting: `messages`, `thread`, `dm_messages`, `ephemerals`, `calls`, `channel_id`, `violations`.

Extension points: a new Web API method is a ``_m_<method with dots as underscores>`` handler taking
the decoded parameters and returning the answer's fields (raise `SlackError` for ``ok: false``);
other routes (``response_url`` targets, inbound traffic helpers) go into `_routes`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.standins.server import LoopbackServer

__all__ = [
    "CHANNEL_ID",
    "DOCUMENTED_REQUIRED",
    "NEWER_METHODS",
    "SPEC_PATH",
    "TS",
    "USER_ID",
    "Call",
    "SlackError",
    "SlackStandin",
    "WebApiSpec",
    "metadata_keys",
]

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_NAME = re.compile(r"^#?[a-z0-9][a-z0-9_-]{0,79}$")
TS = re.compile(r"^\d{10}\.\d{6}$")
DEFAULT_TOKEN = re.compile(r"^(xox[bp]|xapp)-[A-Za-z0-9-]+$")

TEAM_ID = "T0STANDIN1"
TEAM_NAME = "AI Incident Test"
BOT_USER_ID = "U0BOTUSER1"
BOT_ID = "B0BOTUSER1"
APP_ID = "A0BOTAPP01"
MAX_TEXT = 40_000
MAX_BLOCKS = 50

SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "slack_web_api_excerpt.json"
# Methods newer than the 2020 spec, with the parameters their docs (api.slack.com/methods) require.
NEWER_METHODS: dict[str, frozenset[str]] = {
    "files.getUploadURLExternal": frozenset({"filename", "length"}),
    "files.completeUploadExternal": frozenset({"files"}),
    "apps.connections.open": frozenset(),
}
# Required by Slack's method docs and by the real API, though the spec leaves them optional.
DOCUMENTED_REQUIRED: dict[str, frozenset[str]] = {
    "conversations.history": frozenset({"channel"}),
    "conversations.replies": frozenset({"channel", "ts"}),
    "views.update": frozenset({"view"}),
}
# parameter -> the spec definition its value must match
_ID_DEFINITIONS = {
    "channel": "defs_channel",
    "user": "defs_user_id",
    "ts": "defs_ts",
    "thread_ts": "defs_ts",
    "message_ts": "defs_ts",
}
# what Slack answers for a malformed id: parameter -> error, or {method: error, "*": default}
_ID_ERRORS: dict[str, dict[str, str]] = {
    "channel": {"*": "channel_not_found"},
    "user": {"*": "user_not_found"},
    "ts": {
        "chat.update": "message_not_found",
        "conversations.replies": "thread_not_found",
        "*": "invalid_arguments",
    },
    "thread_ts": {"*": "invalid_thread_ts"},
    "message_ts": {"*": "message_not_found"},
}

_STATUS_ERRORS = {
    429: "ratelimited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


@dataclass(frozen=True)
class WebApiSpec:
    """What the stand-in checks calls against, read from the spec excerpt."""

    required: dict[str, frozenset[str]]  # method -> required parameters, ``token`` left out
    patterns: dict[str, re.Pattern[str]]  # parameter -> the id format its value must have

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> WebApiSpec:
        """Read the Swagger 2.0 excerpt at `path`, adding `NEWER_METHODS`/`DOCUMENTED_REQUIRED`."""
        spec = json.loads(path.read_text(encoding="utf-8"))
        required: dict[str, frozenset[str]] = {}
        for route, operations in spec["paths"].items():
            method = route.removeprefix("/")
            names: set[str] = set()
            for operation in operations.values():  # the spec's HTTP verbs are not checked
                names.update(
                    p["name"]
                    for p in operation.get("parameters", [])
                    if p.get("required") and p["name"] != "token"
                )
            required[method] = frozenset(names | DOCUMENTED_REQUIRED.get(method, frozenset()))
        for method, names in NEWER_METHODS.items():
            required.setdefault(method, names)
        definitions = spec["definitions"]
        patterns = {
            param: re.compile(definitions[name]["pattern"])
            for param, name in _ID_DEFINITIONS.items()
        }
        return cls(required=required, patterns=patterns)


@functools.cache
def _web_api_spec() -> WebApiSpec:
    return WebApiSpec.load()


class SlackError(Exception):
    """An ``ok: false`` answer (HTTP `status`, 200 unless Slack says otherwise)."""

    def __init__(
        self, error: str, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}


@dataclass
class Call:
    """One request the stand-in received, with the answer once it was given."""

    method: str  # Slack method, e.g. "chat.postMessage"
    params: dict[str, Any]  # query and body as decoded: JSON values typed, form values strings
    token: str | None
    http_method: str
    content_type: str
    at: float  # time.time() at arrival
    # the answer, set as soon as it is decided (the call has taken effect, if it does), which is
    # before it is sent when an after-effect delay is set
    status: int | None = None
    response: dict[str, Any] | None = None
    answered_at: float | None = None  # time.time() once the answer was handed to the server

    @property
    def in_progress(self) -> bool:
        """Return True until the answer was sent."""
        return self.answered_at is None

    @property
    def ok(self) -> bool:
        """Return True when the answer was HTTP 200 with ``ok: true``."""
        return self.status == 200 and bool(self.response and self.response.get("ok"))


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None  # set on replies: the parent's ts
    user: str = BOT_USER_ID
    edited: dict[str, str] | None = None
    replies: list[str] = field(default_factory=list)  # on parents: reply ts in order

    def to_api(self, *, include_metadata: bool, standin: SlackStandin) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": self.text,
            "ts": self.ts,
        }
        if self.blocks is not None:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.edited is not None:
            out["edited"] = dict(self.edited)
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
            out["parent_user_id"] = standin._message(self.channel, self.thread_ts).user
        elif self.replies:
            users = sorted({standin._message(self.channel, ts).user for ts in self.replies})
            out.update(
                thread_ts=self.ts,
                reply_count=len(self.replies),
                reply_users_count=len(users),
                reply_users=users,
                latest_reply=self.replies[-1],
            )
        if include_metadata and self.metadata is not None:
            out["metadata"] = copy.deepcopy(self.metadata)
        return out


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: float | None
    effect: bool

    def raise_(self) -> None:
        headers = {}
        if self.status == 429:
            headers["Retry-After"] = _retry_after_header(self.retry_after or 1)
        raise SlackError(self.error, status=self.status, headers=headers)


def _retry_after_header(seconds: float) -> str:
    return str(max(0, math.ceil(seconds)))


def _stable_id(prefix: str, seed: str) -> str:
    digest = base64.b32encode(hashlib.sha1(seed.encode()).digest()).decode()
    return prefix + digest[:10]


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


def _ts_value(value: Any, error: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise SlackError(error) from exc


class SlackStandin:
    """The Slack Web API on 127.0.0.1, in a background thread; `start`/`stop` or use `with`."""

    def __init__(
        self,
        *,
        tokens: Collection[str] | None = None,
        strict_channels: bool = False,
        rate_limit_per_channel: bool = False,
        rate_limit_burst: int = 1,
    ) -> None:
        """`tokens`: the accepted tokens (default: any ``xoxb-``/``xoxp-`` token)."""
        self.tokens = set(tokens) if tokens is not None else None
        self.strict_channels = strict_channels
        self.rate_limit_per_channel = rate_limit_per_channel
        self.rate_limit_burst = rate_limit_burst
        self.spec = _web_api_spec()
        # calls Slack would refuse or the stand-in cannot answer truthfully, as readable strings
        self.violations: list[str] = []
        self._lock = threading.RLock()
        self._channels: dict[str, str | None] = {}  # id -> name
        self._usergroups: dict[str, list[str]] = {}  # subteam id -> member user ids
        self._dms: dict[str, str] = {}  # DM channel id -> the user it is with
        self._messages: dict[tuple[str, str], _Message] = {}  # (channel, ts) -> message, post order
        self._ephemerals: list[dict[str, Any]] = []
        self._responses: list[dict[str, Any]] = []
        self._socket_link: (
            tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]] | None
        ) = None
        self._socket_acks: list[dict[str, Any]] = []
        self._calls: list[Call] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[tuple[str, bool], float] = {}  # (method or "*", after_effect) -> seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at monotonic)
        self._last_ts = 0
        # file uploads: file id -> {filename, length, bytes, shared_in, title, thread_ts}
        self._files: dict[str, dict[str, Any]] = {}
        self._upload_failures = 0
        self._server: LoopbackServer | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Web API base URL, ending in ``/api/`` (slack_sdk's ``base_url``)."""
        if not self.port:
            raise RuntimeError("the Slack stand-in is not started")
        return f"http://127.0.0.1:{self.port}/api/"

    def _routes(self) -> list[Route]:
        return [
            Route("/api/{method}", self._endpoint, methods=["GET", "POST"]),
            Route("/response/{token}", self._response_url, methods=["POST"]),
            Route("/upload/{file_id}", self._upload_bytes, methods=["POST"]),
            WebSocketRoute("/socket", self._socket_mode),
        ]

    # -- Socket Mode ------------------------------------------------------------------------

    async def _socket_mode(self, ws: WebSocket) -> None:
        """One Socket Mode connection: hello, then envelopes from `socket_send`; acks recorded."""
        await ws.accept()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with self._lock:
            self._socket_link = (asyncio.get_running_loop(), outbox)
        await ws.send_text(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A0001"},
                    "debug_info": {"host": "standin"},
                }
            )
        )

        async def pump() -> None:
            while True:
                await ws.send_text(json.dumps(await outbox.get()))

        sender = asyncio.create_task(pump())
        try:
            while True:
                message = json.loads(await ws.receive_text())
                with self._lock:
                    self._socket_acks.append(message)
        except (WebSocketDisconnect, json.JSONDecodeError):
            return
        finally:
            sender.cancel()
            with self._lock:
                self._socket_link = None

    def socket_connected(self) -> bool:
        """Return True while a Socket Mode client is connected."""
        with self._lock:
            return self._socket_link is not None

    def socket_send(self, envelope: dict[str, Any]) -> None:
        """Send an envelope (e.g. ``type: slash_commands``) to the connected Socket Mode client."""
        with self._lock:
            link = self._socket_link
        if link is None:
            raise RuntimeError("no Socket Mode client is connected")
        loop, outbox = link
        loop.call_soon_threadsafe(outbox.put_nowait, envelope)

    def socket_acks(self) -> list[dict[str, Any]]:
        """Return what the client sent back (acks carry the ``envelope_id``)."""
        with self._lock:
            return list(self._socket_acks)

    def response_url(self, token: str = "T0001") -> str:
        """A ``response_url`` for inbound payloads; posts to it are kept in `responses`."""
        return f"http://127.0.0.1:{self.port}/response/{token}"

    def responses(self, token: str | None = None) -> list[dict[str, Any]]:
        """Return the JSON bodies posted to ``response_url`` targets, oldest first."""
        with self._lock:
            return [dict(r) for r in self._responses if token is None or r["_token"] == token]

    async def _response_url(self, request: Request) -> Response:
        body = await request.body()
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            return PlainTextResponse("invalid_payload", status_code=400)
        with self._lock:
            self._responses.append({**data, "_token": request.path_params["token"]})
        return PlainTextResponse("ok")

    def start(self, timeout: float = 10.0) -> SlackStandin:
        """Serve on an ephemeral loopback port; return once it accepts connections."""
        self._server = LoopbackServer(
            Starlette(routes=self._routes()),
            name="Slack stand-in",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        self.port = self._server.start(timeout)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        error: str | None = None,
        times: int = 1,
        effect: bool = False,
    ) -> None:
        """Make the next `times` calls of `method` ("*": any method) fail.

        With neither `status` nor `error`: HTTP 429. With only `error`: HTTP 200 ``ok: false``.
        429 answers carry ``Retry-After`` (`retry_after`, default 1 s). With `effect` the call takes
        effect first and only its answer is the failure.
        """
        if status is None:
            status = 200 if error is not None else 429
        if error is None:
            error = _STATUS_ERRORS.get(
                status, "internal_error" if status >= 500 else "request_failed"
            )
        failure = _Failure(status=status, error=error, retry_after=retry_after, effect=effect)
        with self._lock:
            self._failures.setdefault(method, deque()).extend([failure] * times)

    def set_delay(
        self, seconds: float, *, method: str | None = None, after_effect: bool = False
    ) -> None:
        """Delay answers of `method` (default: every method) by `seconds`.

        The delay runs before the call takes effect, or after it with `after_effect`, so a caller
        that gives up (or dies) mid-call has, or has not, changed Slack. Both can be set at once.
        """
        with self._lock:
            self._delays[(method or "*", after_effect)] = max(0.0, seconds)

    def add_usergroup(self, group_id: str, users: Iterable[str]) -> None:
        """Create (or replace) user group `group_id` (``S…``) with `users` as its members."""
        members = list(users)
        if not re.match(r"^S[A-Z0-9]{2,}$", group_id):
            raise ValueError(f"not a Slack user group id: {group_id!r}")
        if not all(isinstance(u, str) and USER_ID.match(u) for u in members):
            raise ValueError(f"not Slack user ids: {members!r}")
        with self._lock:
            self._usergroups[group_id] = members

    def add_channel(self, name: str | None = None, channel_id: str | None = None) -> str:
        """Create a channel (by `#name`, by id, or both); return its id."""
        with self._lock:
            if channel_id is None:
                channel_id = _stable_id("C", (name or f"channel-{len(self._channels)}").lstrip("#"))
            elif not CHANNEL_ID.match(channel_id):
                raise ValueError(f"not a Slack channel id: {channel_id!r}")
            self._channels[channel_id] = name.lstrip("#") if name else None
            return channel_id

    def channel_id(self, name: str) -> str:
        """Return the id `#name` maps to (the same in every stand-in)."""
        if CHANNEL_ID.match(name):
            return name
        if USER_ID.match(name):
            return _stable_id("D", f"dm:{name}")
        return _stable_id("C", name.lstrip("#"))

    # -- inspection -------------------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Every stored message (top level and replies) in post order, with channel and metadata.

        `channel` may be an id or a ``#name``.
        """
        with self._lock:
            wanted = self.channel_id(channel) if channel is not None else None
            return [
                {"channel": m.channel, **m.to_api(include_metadata=True, standin=self)}
                for m in self._messages.values()
                if wanted is None or m.channel == wanted
            ]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent message and its replies, oldest first (empty when there is no such ts)."""
        with self._lock:
            channel = self.channel_id(channel)
            parent = self._messages.get((channel, ts))
            if parent is None:
                return []
            if parent.thread_ts is not None:
                parent = self._message(channel, parent.thread_ts)
            items = [parent, *(self._message(channel, r) for r in parent.replies)]
            return [
                {"channel": channel, **m.to_api(include_metadata=True, standin=self)} for m in items
            ]

    def ephemerals(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (``chat.postEphemeral``), in order."""
        with self._lock:
            wanted = self.channel_id(channel) if channel is not None else None
            return [copy.deepcopy(e) for e in self._ephemerals if wanted in (None, e["channel"])]

    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded requests, in arrival order; only those of `method` when given."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def assert_no_violations(self) -> None:
        """Fail when any call broke the Web API spec (see `violations`)."""
        with self._lock:
            found = list(self.violations)
        if found:
            listing = "\n".join(f"- {v}" for v in found)
            raise AssertionError(
                f"{len(found)} Slack Web API call(s) Slack would refuse:\n{listing}"
            )

    # -- HTTP -------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        params: dict[str, Any] = dict(request.query_params)
        decode_error: str | None = None
        if raw:
            if content_type.startswith("application/json"):
                try:
                    body = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    decode_error = "invalid_json"
                else:
                    if isinstance(body, dict):
                        params.update(body)
                    else:
                        decode_error = "json_not_object"
            elif content_type.startswith("application/x-www-form-urlencoded"):
                try:
                    params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
                except UnicodeDecodeError:
                    decode_error = "invalid_charset"
            else:
                decode_error = "invalid_form_data"
        token = self._token(request.headers.get("authorization"), params)
        call = Call(
            method=method,
            params=params,
            token=token,
            http_method=request.method,
            content_type=content_type,
            at=time.time(),
        )
        with self._lock:
            self._calls.append(call)
        await self._pause(method, after_effect=False)
        status, body, headers = self._answer(method, params, token, decode_error)
        call.status, call.response = status, body
        await self._pause(method, after_effect=True)
        call.answered_at = time.time()
        return JSONResponse(body, status_code=status, headers=headers)

    async def _pause(self, method: str, *, after_effect: bool) -> None:
        with self._lock:
            seconds = self._delays.get(
                (method, after_effect), self._delays.get(("*", after_effect), 0)
            )
        if seconds:
            await asyncio.sleep(seconds)

    @staticmethod
    def _token(authorization: str | None, params: dict[str, Any]) -> str | None:
        if authorization:
            scheme, _, value = authorization.partition(" ")
            return value.strip() if scheme.lower() == "bearer" and value.strip() else None
        token = params.get("token")
        return str(token) if token else None

    def _answer(
        self, method: str, params: dict[str, Any], token: str | None, decode_error: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            if decode_error is not None:
                problems = [(f"{method}: the body could not be decoded ({decode_error})", "")]
            else:
                problems = self._spec_problems(method, params)
            self.violations.extend(message for message, _ in problems)
            queue = self._failures.get(method) or self._failures.get("*")
            failure = queue.popleft() if queue else None
            try:
                if failure is not None and not failure.effect:
                    failure.raise_()
                if decode_error is not None:
                    raise SlackError(decode_error)
                self._authenticate(token)
                if problems:
                    raise SlackError(problems[0][1])
                handler = getattr(self, "_m_" + method.replace(".", "_"), None)
                if handler is None:
                    self.violations.append(
                        f"{method}: in Slack's spec but not implemented by the stand-in "
                        f"(add _m_{method.replace('.', '_')}); answered unknown_method"
                    )
                    raise SlackError("unknown_method")
                result: dict[str, Any] = handler(params)
                if failure is not None:
                    failure.raise_()
            except SlackError as exc:
                return exc.status, {"ok": False, "error": exc.error}, exc.headers
            return 200, {"ok": True, **result}, {}

    def _spec_problems(self, method: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """Check a call against the spec; return (violation, Slack's error) pairs."""
        required = self.spec.required.get(method)
        if required is None:
            return [
                (
                    f"{method}: no such Web API method (neither in the spec excerpt nor in "
                    "NEWER_METHODS)",
                    "unknown_method",
                )
            ]
        problems = []
        for name in sorted(required):
            if params.get(name) in (None, ""):
                error = "channel_not_found" if name == "channel" else "invalid_arguments"
                problems.append((f"{method}: required parameter {name!r} is missing", error))
        for name, pattern in self.spec.patterns.items():
            value = params.get(name)
            if value in (None, ""):
                continue
            shown = value
            if (
                name == "channel"
                and isinstance(value, str)
                and (USER_ID.match(value) or CHANNEL_NAME.match(value))
            ):
                shown = f"{value} -> {self.channel_id(value)}"
                value = self.channel_id(value)
            if isinstance(value, str) and pattern.match(value):
                continue
            errors = _ID_ERRORS[name]
            problems.append(
                (
                    f"{method}: {name}={shown!r} does not match {pattern.pattern}",
                    errors.get(method, errors["*"]),
                )
            )
        return problems

    def _authenticate(self, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        accepted = token in self.tokens if self.tokens is not None else DEFAULT_TOKEN.match(token)
        if not accepted:
            raise SlackError("invalid_auth")

    # -- state helpers (called with the lock held) -----------------------------------------

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise SlackError("channel_not_found")
        if CHANNEL_ID.match(value):
            channel = value
        elif USER_ID.match(value) or CHANNEL_NAME.match(value):
            channel = self.channel_id(value)
        else:
            raise SlackError("channel_not_found")
        if channel not in self._channels:
            if self.strict_channels:
                raise SlackError("channel_not_found")
            self._channels[channel] = value.lstrip("#") if not CHANNEL_ID.match(value) else None
        return channel

    def _message(self, channel: str, ts: str) -> _Message:
        return self._messages[(channel, ts)]

    def _take_rate_token(self, channel: str) -> None:
        if not self.rate_limit_per_channel:
            return
        now = time.monotonic()
        burst = float(max(1, self.rate_limit_burst))
        tokens, at = self._buckets.get(channel, (burst, now))
        tokens = min(burst, tokens + (now - at))  # one message per second refills
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            raise SlackError(
                "ratelimited",
                status=429,
                headers={"Retry-After": _retry_after_header(1.0 - tokens)},
            )
        self._buckets[channel] = (tokens - 1.0, now)

    @staticmethod
    def _json_param(params: dict[str, Any], name: str, error: str) -> Any:
        value = params.get(name)
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise SlackError(error) from exc
        return value

    def _content(self, params: dict[str, Any], *, require: bool = True) -> tuple[str, Any]:
        text = params.get("text")
        text = "" if text is None else str(text)
        blocks = self._json_param(params, "blocks", "invalid_blocks_format")
        if blocks is not None:
            if not isinstance(blocks, list) or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks
            ):
                raise SlackError("invalid_blocks_format")
            if len(blocks) > MAX_BLOCKS:
                raise SlackError("invalid_blocks")
        if require and not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        return text, blocks

    def _metadata(self, params: dict[str, Any]) -> dict[str, Any] | None:
        metadata = self._json_param(params, "metadata", "invalid_metadata_format")
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackError("invalid_metadata_format")
        return metadata

    def _window(
        self, params: dict[str, Any], messages: list[_Message], default_limit: int
    ) -> tuple[list[_Message], bool, str]:
        """Apply oldest/latest/inclusive, then cursor and limit; return (page, has_more, cursor)."""
        inclusive = _flag(params.get("inclusive", False))
        oldest = _ts_value(params.get("oldest", "0"), "invalid_ts_oldest")
        latest = params.get("latest")
        latest_value = _ts_value(latest, "invalid_ts_latest") if latest not in (None, "") else None

        def inside(m: _Message) -> bool:
            ts = Decimal(m.ts)
            if ts < oldest or (ts == oldest and not inclusive and oldest != 0):
                return False
            if latest_value is None:
                return True
            return ts < latest_value or (ts == latest_value and inclusive)

        selected = [m for m in messages if inside(m)]
        try:
            limit = int(params.get("limit") or default_limit)
        except ValueError as exc:
            raise SlackError("invalid_limit") from exc
        limit = max(1, min(limit, 999))
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                start = int(base64.b64decode(str(cursor)).decode().removeprefix("offset:"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise SlackError("invalid_cursor") from exc
        page = selected[start : start + limit]
        has_more = start + limit < len(selected)
        next_cursor = (
            base64.b64encode(f"offset:{start + limit}".encode()).decode() if has_more else ""
        )
        return page, has_more, next_cursor

    # -- Web API methods --------------------------------------------------------------------

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://ai-incident-test.slack.com/",
            "team": TEAM_NAME,
            "user": "ai-incident",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        text, blocks = self._content(params)
        metadata = self._metadata(params)
        thread_ts = params.get("thread_ts") or None
        parent: _Message | None = None
        if thread_ts is not None:
            thread_ts = str(thread_ts)
            if not TS.match(thread_ts):
                raise SlackError("invalid_thread_ts")
            parent = self._messages.get((channel, thread_ts))
            if parent is None:
                raise SlackError("thread_not_found")
            if parent.thread_ts is not None:  # a reply to a reply lands in the same thread
                parent = self._message(channel, parent.thread_ts)
        self._take_rate_token(channel)
        message = _Message(
            channel=channel,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            metadata=metadata,
            thread_ts=parent.ts if parent is not None else None,
        )
        self._messages[(channel, message.ts)] = message
        if parent is not None:
            parent.replies.append(message.ts)
        return {
            "channel": channel,
            "ts": message.ts,
            "message": message.to_api(include_metadata=True, standin=self),
        }

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = self._messages.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        if message.user != BOT_USER_ID:
            raise SlackError("cant_update_message")
        text, blocks = self._content(params)
        metadata = self._metadata(params)
        if params.get("text") is not None or blocks is None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks
        if metadata is not None:
            message.metadata = metadata
        message.edited = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "message": message.to_api(include_metadata=True, standin=self),
        }

    def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("message_ts") or "")
        message = self._messages.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        link = f"https://ai-incident-test.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.thread_ts is not None:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        user = params.get("user")
        if not isinstance(user, str) or not USER_ID.match(user):
            raise SlackError("user_not_in_channel")
        text, blocks = self._content(params)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": text,
                "blocks": blocks,
                "thread_ts": params.get("thread_ts"),
                "message_ts": ts,
            }
        )
        return {"message_ts": ts}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """Open a modal: needs ``trigger_id`` and a ``view`` object; the view is in `calls`."""
        trigger_id = params.get("trigger_id")
        view = self._json_param(params, "view", "invalid_arguments")
        if not isinstance(trigger_id, str) or not trigger_id:
            raise SlackError("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise SlackError("invalid_arguments")
        view_id = _stable_id("V", self._next_ts())
        return {
            "view": {
                **copy.deepcopy(view),
                "id": view_id,
                "team_id": TEAM_ID,
                "app_id": APP_ID,
                "bot_id": BOT_ID,
                "root_view_id": view_id,
                "previous_view_id": None,
                "state": {"values": {}},
                "hash": f"{int(time.time())}.{view_id}",
                "private_metadata": view.get("private_metadata", ""),
                "callback_id": view.get("callback_id", ""),
                "external_id": view.get("external_id", ""),
            }
        }

    def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        members = self._usergroups.get(str(params.get("usergroup")))
        if members is None:
            raise SlackError("no_such_subteam")
        return {"users": list(members)}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """Open (or resume) the DM with one user: ``users`` is a comma-separated list of ids."""
        users = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
        if not users:
            if params.get("channel"):
                return {"channel": {"id": self._resolve_channel(params["channel"])}}
            raise SlackError("users_list_not_supplied")
        if not all(USER_ID.match(u) for u in users):
            raise SlackError("user_not_found")
        if len(users) > 1:
            raise SlackError("not_implemented")  # multi-person DMs: the bot never opens one
        channel = self.channel_id(users[0])
        already = channel in self._channels
        self._channels.setdefault(channel, None)
        self._dms[channel] = users[0]
        return {"no_op": already, "already_open": already, "channel": {"id": channel}}

    def dm_messages(self, user: str) -> list[dict[str, Any]]:
        """Messages posted in the direct message with `user`, in order."""
        return self.messages(self.channel_id(user))

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        metadata = _flag(params.get("include_all_metadata", False))
        top = [m for (c, _), m in self._messages.items() if c == channel and m.thread_ts is None]
        top.sort(key=lambda m: Decimal(m.ts), reverse=True)  # newest first, as Slack
        page, has_more, cursor = self._window(params, top, default_limit=100)
        return {
            "messages": [m.to_api(include_metadata=metadata, standin=self) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = self._messages.get((channel, ts))
        if message is None:
            raise SlackError("thread_not_found")
        if message.thread_ts is not None:
            message = self._message(channel, message.thread_ts)
        metadata = _flag(params.get("include_all_metadata", False))
        items = [message, *(self._message(channel, r) for r in message.replies)]  # oldest first
        page, has_more, cursor = self._window(params, items, default_limit=1000)
        return {
            "messages": [m.to_api(include_metadata=metadata, standin=self) for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": cursor},
        }

    # -- file uploads: files.getUploadURLExternal, the bytes, files.completeUploadExternal --

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(params.get("length", ""))
        except ValueError:
            raise SlackError("invalid_arguments") from None
        if length <= 0:
            raise SlackError("invalid_arguments")
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self._files[file_id] = {
            "filename": str(params.get("filename")),
            "length": length,
            "bytes": None,
            "shared_in": None,
        }
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments")
        channel = params.get("channel_id")
        channel_id = self._resolve_channel(channel) if channel else None
        done = []
        for entry in files:
            record = self._files.get(str(entry.get("id")))
            if record is None:
                raise SlackError("file_not_found")
            if record["bytes"] is None:
                raise SlackError("file_upload_not_complete")
            record.update(
                shared_in=channel_id,
                title=entry.get("title"),
                thread_ts=params.get("thread_ts"),
            )
            done.append({"id": entry.get("id"), "title": entry.get("title")})
        return {"files": done}

    async def _upload_bytes(self, request: Request) -> Response:
        data = await request.body()
        with self._lock:
            if self._upload_failures:
                self._upload_failures -= 1
                return PlainTextResponse("upload failed", status_code=500)
            record = self._files.get(request.path_params["file_id"])
            if record is None:
                return PlainTextResponse("no such upload", status_code=404)
            if len(data) != record["length"]:
                self.violations.append(
                    f"upload {request.path_params['file_id']}: {len(data)} bytes sent, "
                    f"{record['length']} announced"
                )
            record["bytes"] = data
        return PlainTextResponse(f"OK - {len(data)}")

    def fail_uploads(self, times: int = 1) -> None:
        """Make the next `times` byte uploads to the upload URL answer HTTP 500."""
        with self._lock:
            self._upload_failures += times

    def files(self) -> list[dict[str, Any]]:
        """Return the files shared in a channel (upload completed)."""
        with self._lock:
            return [{"id": fid, **rec} for fid, rec in self._files.items() if rec["shared_in"]]


def metadata_keys(messages: Iterable[dict[str, Any]]) -> list[str]:
    """Return the ``metadata.event_payload.key`` of each message that has one, in order."""
    keys = []
    for m in messages:
        key = ((m.get("metadata") or {}).get("event_payload") or {}).get("key")
        if key is not None:
            keys.append(str(key))
    return keys
