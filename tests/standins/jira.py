"""A stateful stand-in for Jira's REST API (Cloud or Data Center) on an ephemeral loopback port.

It keeps issues, comments, statuses, transitions and users, answers the way Jira does, records
every request, checks each one against Atlassian's published REST spec, and can be made to fail::

    with JiraStandin(mode="cloud") as jira:
        client = JIRA(jira.url, basic_auth=(jira.email, jira.token), max_retries=0)
        ...
        assert jira.issues()[0]["fields"]["summary"] == "..."

Behaviour, as Atlassian's REST docs describe it:

- Served at ``/rest/api/2/...`` (the `jira` package's default), ``/rest/api/latest/...`` and
  ``/rest/api/3/...``. Errors carry Jira's body: ``{"errorMessages": [...], "errors": {...}}``.
- ``mode="cloud"``: ``serverInfo`` says ``deploymentType: Cloud``; auth is HTTP Basic with an
  account email and API token; people are ``accountId`` only (a ``name`` or ``username`` is refused
  and recorded as a violation); ``/rest/api/2/search`` is gone (HTTP 410) in favour of
  ``/search/jql``. ``mode="dc"``: ``deploymentType: Server``, a personal access token as
  ``Authorization: Bearer``, people by user ``name``, ``/search`` (``/search/jql`` is 404).
- Projects (`projects`) with issue keys ``KEY-1``, ``KEY-2``...; issue types ``Task``, ``Bug``,
  ``Incident``; priorities ``Highest`` ... ``Lowest``; statuses To Do (new), In Progress
  (indeterminate), Done (done) with a transition into each other status (ids 11, 21, 31; names
  from `transition_names`, so a test can drop the one called "Done").
- JQL: ``field = "value"`` clauses joined by ``AND`` over ``project``, ``labels``, ``key`` and
  ``status``, then an optional ``ORDER BY``; anything else is HTTP 400 as Jira answers it.

Spec checks (`violations`): every request's path and verb exist in the excerpt
``tests/specs/jira_platform_excerpt.json`` (``/2/`` and ``/latest/`` mapped to ``/3/``), the
parameters it marks required are present, and JSON bodies validate against the request schema.
On top, the Cloud-only rules the spec does not encode (accountId only, no ``/rest/api/2/search``,
bounded JQL on ``/search/jql``) and the v2 rule that descriptions and comments are wiki-markup
strings, not ADF.

Making it misbehave (thread-safe, callable while the bot runs):

- ``fail_next(route, status=503, times=n, retry_after=None)`` — answer with that status before
  doing anything; ``route`` is one of `ROUTES` or ``"*"``.
- ``hang_next(route, seconds, times=1)`` — do the work, then hold the answer for `seconds` (longer
  than the client's timeout: "Jira created the issue but the answer never came").

Webhooks: every change a person or the bot makes is also kept as the ``jira:issue_updated`` body
Jira would send (`webhook_events`), so a test can deliver them to the bot. `move` and `reassign`
act as a person in Jira would.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins.server import LoopbackServer

__all__ = ["ROUTES", "SPEC_PATH", "Call", "JiraStandin", "RestSpec"]

SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "jira_platform_excerpt.json"

ROUTES = (
    "serverInfo",
    "myself",
    "field",
    "create",
    "get",
    "edit",
    "comments",
    "comment",
    "transitions",
    "transition",
    "assignee",
    "search",
    "users",
)

STATUSES = {
    "10000": {"name": "To Do", "category": ("new", "To Do", 2)},
    "10001": {"name": "In Progress", "category": ("indeterminate", "In Progress", 4)},
    "10002": {"name": "Done", "category": ("done", "Done", 3)},
}
TRANSITION_TO = {"11": "10000", "21": "10001", "31": "10002"}
ISSUE_TYPES = {"Task": "10001", "Bug": "10002", "Incident": "10003"}
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
SYSTEM_FIELDS = [
    ("summary", "Summary"),
    ("description", "Description"),
    ("labels", "Labels"),
    ("priority", "Priority"),
    ("status", "Status"),
    ("assignee", "Assignee"),
    ("issuetype", "Issue Type"),
    ("project", "Project"),
    ("created", "Created"),
]
BOT_CLOUD = {"accountId": "557058:bot-0000-0001", "displayName": "ai-incident bot"}
BOT_DC = {"name": "ai-incident", "key": "JIRAUSER10900", "displayName": "ai-incident bot"}
PEOPLE = (
    ("alice", "5b10ac8d82e05b22cc7d4ef5", "Alice Example", "alice@example.com"),
    ("bob", "5b10a2844c20165700ede21g", "Bob Example", "bob@example.com"),
    ("carol", "5b10a0effa615349cb016cd8", "Carol Example", "carol@example.com"),
    ("dave", "5b10a0effa615349cb016cd9", "Dave Nolist", "dave@example.com"),
)
_CLAUSE = re.compile(r'^\s*(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([\w.-]+))\s*$')


@dataclass(frozen=True)
class RestSpec:
    """Paths, verbs, required parameters and body schemas of the spec excerpt."""

    document: dict[str, Any]
    templates: list[tuple[re.Pattern[str], str]]

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> RestSpec:
        document = json.loads(path.read_text(encoding="utf-8"))
        templates = []
        for template in document["paths"]:
            rx = re.escape(template)
            rx = re.sub(r"\\\{[^}]+\\\}", "[^/]+", rx)
            templates.append((re.compile(f"^{rx}$"), template))
        return cls(document=document, templates=templates)

    def check(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[str | None, list[str]]:
        """Return the spec template the request matches (or None) and its problems."""
        mapped = re.sub(r"^/rest/api/(2|latest)/", "/rest/api/3/", path)
        template = next((t for rx, t in self.templates if rx.match(mapped)), None)
        if template is None:
            return None, [f"{method} {path}: no such path in the spec"]
        operation = self.document["paths"][template].get(method.lower())
        if operation is None:
            return template, [f"{method} {path}: {template} has no {method}"]
        problems = []
        for param in operation.get("parameters", []):
            if param.get("in") == "query" and param.get("required") and param["name"] not in query:
                problems.append(f"{method} {template}: required query parameter {param['name']}")
        request_body = operation.get("requestBody")
        if request_body is not None:
            schema = request_body["content"].get("application/json", {}).get("schema")
            if body is None and request_body.get("required"):
                problems.append(f"{method} {template}: a JSON body is required")
            elif schema is not None and body is not None:
                root = {**schema, "components": self.document["components"]}
                validator = jsonschema.Draft7Validator(root)
                problems += [
                    f"{method} {template}: body {'/'.join(map(str, e.absolute_path)) or '(root)'}: "
                    f"{e.message}"
                    for e in validator.iter_errors(body)
                ]
        return template, problems


@functools.cache
def _rest_spec() -> RestSpec:
    return RestSpec.load()


class JiraError(Exception):
    """An error answer in Jira's shape."""

    def __init__(
        self,
        status: int,
        *messages: str,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {messages or errors}")
        self.status = status
        self.messages = list(messages)
        self.errors = errors or {}
        self.headers = headers or {}


@dataclass
class Call:
    """One request, with its answer."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    body: Any
    auth: str | None
    status: int | None = None
    response: Any = None
    at: float = field(default_factory=time.time)


@dataclass
class _Fault:
    status: int | None
    hang: float | None
    retry_after: float | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class JiraStandin:
    """Jira's REST API on 127.0.0.1 in a background thread; `start`/`stop` or use `with`."""

    def __init__(
        self,
        *,
        mode: Literal["cloud", "dc"] = "cloud",
        projects: tuple[str, ...] = ("AIOPS", "SUP", "OPS", "LOCAL"),
        transition_names: dict[str, str] | None = None,
    ) -> None:
        self.mode = mode
        self.email = "bot@example.com"
        self.token = "jira-api-token-1234"  # Cloud API token, or DC personal access token
        self.projects = {key: str(10000 + i) for i, key in enumerate(projects)}
        self.transition_names = transition_names or {"11": "To Do", "21": "Start", "31": "Done"}
        self.spec = _rest_spec()
        self.violations: list[str] = []
        self._lock = threading.RLock()
        self._issues: dict[str, dict[str, Any]] = {}
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._counters: dict[str, int] = {}
        self._next_id = 10100
        self._calls: list[Call] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._events: list[dict[str, Any]] = []
        self._server: LoopbackServer | None = None
        self.port = 0

    # -- people ----------------------------------------------------------------------------

    @property
    def cloud(self) -> bool:
        return self.mode == "cloud"

    def _user(self, who: tuple[str, str, str, str]) -> dict[str, Any]:
        name, account, display, email = who
        base = self.url.rstrip("/")
        if self.cloud:
            return {
                "self": f"{base}/rest/api/2/user?accountId={account}",
                "accountId": account,
                "accountType": "atlassian",
                "displayName": display,
                "emailAddress": email,
                "active": True,
            }
        return {
            "self": f"{base}/rest/api/2/user?username={name}",
            "name": name,
            "key": f"JIRAUSER{10000 + PEOPLE.index(who)}",
            "displayName": display,
            "emailAddress": email,
            "active": True,
        }

    def user(self, handle: str) -> dict[str, Any]:
        """Return a person as Jira shows them (`handle`: name, accountId or email)."""
        for who in PEOPLE:
            if handle in (who[0], who[1], who[3]):
                return self._user(who)
        raise KeyError(handle)

    def _bot(self) -> dict[str, Any]:
        return dict(BOT_CLOUD if self.cloud else BOT_DC)

    def _id_of(self, user: dict[str, Any] | None) -> str | None:
        if user is None:
            return None
        return str(user["accountId"] if self.cloud else user["name"])

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the Jira stand-in is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> JiraStandin:
        """Serve on an ephemeral loopback port; return once it accepts connections."""
        app = Starlette(
            routes=[
                Route(
                    "/rest/api/{version}/{rest:path}",
                    self._endpoint,
                    methods=["GET", "POST", "PUT", "DELETE"],
                )
            ]
        )
        self._server = LoopbackServer(app, name="Jira stand-in", timeout_graceful_shutdown=1)
        self.port = self._server.start(timeout)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> JiraStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------

    def fail_next(
        self, route: str, *, status: int = 503, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next `times` requests of `route` ("*": any) with `status`, doing nothing."""
        self._fault(route, _Fault(status=status, hang=None, retry_after=retry_after), times)

    def hang_next(self, route: str, seconds: float, *, times: int = 1) -> None:
        """Do the next `times` requests of `route`, then hold each answer for `seconds`."""
        self._fault(route, _Fault(status=None, hang=seconds, retry_after=None), times)

    def _fault(self, route: str, fault: _Fault, times: int) -> None:
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES}")
        with self._lock:
            self._faults.setdefault(route, deque()).extend([fault] * times)

    def move(self, key: str, status: str, *, by: str = "alice") -> None:
        """Move an issue to a status as a person does in Jira (a webhook event is kept)."""
        target = next(i for i, s in STATUSES.items() if s["name"] == status)
        with self._lock:
            self._set_status(self._issues[key], target, self.user(by))

    def reassign(self, key: str, to: str | None, *, by: str = "alice") -> None:
        """Assign an issue as a person does in Jira (a webhook event is kept)."""
        with self._lock:
            self._set_assignee(self._issues[key], self.user(to) if to else None, self.user(by))

    def assert_no_violations(self) -> None:
        with self._lock:
            assert not self.violations, "requests Jira would refuse:\n" + "\n".join(self.violations)

    # -- inspecting -------------------------------------------------------------------------

    def issues(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._issues.values()))

    def issue(self, key: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._issues[key])

    def comments(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._comments.get(key, []))

    def calls(self, route: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if route is None or c.route == route]

    def writes(self) -> list[Call]:
        """Return the successful requests that changed something."""
        with self._lock:
            return [
                c
                for c in self._calls
                if c.method in ("POST", "PUT")
                and c.route != "search"
                and c.status is not None
                and c.status < 300
            ]

    def webhook_events(self) -> list[dict[str, Any]]:
        """Return the `jira:issue_updated` bodies Jira would have sent, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    # -- HTTP -------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        version = request.path_params["version"]
        rest = "/" + request.path_params["rest"]
        path = f"/rest/api/{version}{rest}"
        raw = await request.body()
        query = dict(request.query_params)
        call = Call(
            method=request.method,
            path=path,
            route=self._route(request.method, rest),
            query=query,
            body=None,
            auth=request.headers.get("authorization"),
        )
        with self._lock:
            self._calls.append(call)
        if raw:
            try:
                call.body = json.loads(raw)
            except json.JSONDecodeError:
                return self._answer(call, JiraError(400, "Unexpected character in the JSON body"))
        problems: list[str] = []
        if version not in ("2", "3", "latest"):
            problems.append(f"{request.method} {path}: no REST API version {version}")
        else:
            _, problems = self.spec.check(request.method, path, query, call.body)
        with self._lock:
            self.violations.extend(problems)
            fault = self._take_fault(call.route)
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after else {}
            return self._answer(
                call, JiraError(fault.status, "Service unavailable (stand-in)", headers=headers)
            )
        try:
            self._authenticate(call.auth)
            with self._lock:
                status, result = self._handle(call, version, rest)
        except JiraError as exc:
            return self._answer(call, exc)
        if fault is not None and fault.hang is not None:
            call.status, call.response = status, result
            await asyncio.sleep(fault.hang)
        return self._answer(call, None, status, result)

    def _answer(
        self, call: Call, error: JiraError | None, status: int = 200, result: Any = None
    ) -> Response:
        if error is not None:
            status = error.status
            result = {"errorMessages": error.messages, "errors": error.errors}
            call.status, call.response = status, result
            return JSONResponse(result, status_code=status, headers=error.headers)
        call.status, call.response = status, result
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(result, status_code=status)

    def _take_fault(self, route: str) -> _Fault | None:
        for name in (route, "*"):
            queue = self._faults.get(name)
            if queue:
                return queue.popleft()
        return None

    def _authenticate(self, header: str | None) -> None:
        scheme, _, value = (header or "").partition(" ")
        if self.cloud:
            if scheme.lower() == "basic":
                try:
                    user, _, secret = base64.b64decode(value).decode().partition(":")
                except ValueError as exc:
                    raise JiraError(401, "Client must be authenticated") from exc
                if user == self.email and secret == self.token:
                    return
            raise JiraError(401, "Client must be authenticated to access this resource.")
        if scheme.lower() == "bearer" and value == self.token:
            return
        raise JiraError(401, "You are not authenticated. Authentication required to perform this.")

    @staticmethod
    def _route(method: str, rest: str) -> str:
        parts = [p for p in rest.split("/") if p]
        if parts[:1] == ["issue"] and len(parts) == 1:
            return "create"
        if parts[:1] == ["issue"] and len(parts) == 2:
            return "get" if method == "GET" else "edit"
        if parts[:1] == ["issue"] and len(parts) == 3:
            sub = parts[2]
            if sub == "comment":
                return "comments" if method == "GET" else "comment"
            if sub == "transitions":
                return "transitions" if method == "GET" else "transition"
            if sub == "assignee":
                return "assignee"
        if parts[:1] == ["search"]:
            return "search"
        if parts[:2] == ["user", "search"]:
            return "users"
        if parts[:1] in (["serverInfo"], ["myself"], ["field"]):
            return parts[0]
        return "other"

    # -- behaviour (lock held) --------------------------------------------------------------

    def _handle(self, call: Call, version: str, rest: str) -> tuple[int, Any]:
        parts = [p for p in rest.split("/") if p]
        route = call.route
        if route == "serverInfo":
            return 200, self._server_info()
        if route == "myself":
            return 200, self._bot()
        if route == "field":
            return 200, [
                {"id": fid, "key": fid, "name": name, "custom": False, "clauseNames": [fid]}
                for fid, name in SYSTEM_FIELDS
            ]
        if route == "create":
            return self._create(call.body, version)
        if route == "search":
            return self._search(call, version, parts)
        if route == "users":
            return self._users(call.query)
        if route in ("get", "edit", "comments", "comment", "transitions", "transition", "assignee"):
            issue = self._issues.get(parts[1])
            if issue is None:
                raise JiraError(
                    404, "Issue does not exist or you do not have permission to see it."
                )
            return self._on_issue(route, issue, call, version)
        raise JiraError(404, f"No REST resource at {call.method} {call.path} in the stand-in")

    def _server_info(self) -> dict[str, Any]:
        if self.cloud:
            return {
                "baseUrl": self.url,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": "Cloud",
                "buildNumber": 100295,
                "serverTime": _now(),
                "scmInfo": "standin",
                "serverTitle": "Jira",
            }
        return {
            "baseUrl": self.url,
            "version": "9.12.4",
            "versionNumbers": [9, 12, 4],
            "deploymentType": "Server",
            "buildNumber": 9120004,
            "serverTime": _now(),
            "scmInfo": "standin",
            "serverTitle": "Jira Data Center",
        }

    def _status(self, status_id: str) -> dict[str, Any]:
        spec = STATUSES[status_id]
        key, name, cid = spec["category"]
        return {
            "self": f"{self.url}/rest/api/2/status/{status_id}",
            "id": status_id,
            "name": spec["name"],
            "statusCategory": {"id": cid, "key": key, "name": name},
        }

    def _text_field(self, value: Any, what: str, version: str) -> None:
        if version == "3":
            if not isinstance(value, dict) or value.get("type") != "doc":
                raise JiraError(400, errors={what: "Operation value must be an Atlassian Document"})
        elif not isinstance(value, str):
            self.violations.append(f"REST v2 {what} must be a wiki-markup string, got {value!r}")
            raise JiraError(400, errors={what: "Operation value must be a string"})

    def _create(self, body: Any, version: str) -> tuple[int, Any]:
        fields = (body or {}).get("fields") or {}
        errors: dict[str, str] = {}
        project = fields.get("project") or {}
        key = project.get("key") or next(
            (k for k, v in self.projects.items() if v == project.get("id")), None
        )
        if key not in self.projects:
            errors["project"] = "valid project is required"
        issuetype = (fields.get("issuetype") or {}).get("name")
        if issuetype not in ISSUE_TYPES:
            errors["issuetype"] = "Specify a valid issue type"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255 or "\n" in summary:
            errors["summary"] = "Summary must be less than 255 characters, on one line."
        priority = (fields.get("priority") or {}).get("name") if "priority" in fields else None
        if "priority" in fields and priority not in PRIORITIES:
            errors["priority"] = f"Priority name '{priority}' is not valid"
        labels = fields.get("labels") or []
        if any((not isinstance(label, str)) or re.search(r"\s", label) for label in labels):
            errors["labels"] = "Labels cannot contain spaces."
        if "description" in fields:
            self._text_field(fields["description"], "description", version)
        if errors:
            raise JiraError(400, errors=errors)
        assert key is not None
        self._counters[key] = self._counters.get(key, 0) + 1
        issue_key = f"{key}-{self._counters[key]}"
        self._next_id += 1
        issue = {
            "id": str(self._next_id),
            "key": issue_key,
            "self": f"{self.url}/rest/api/2/issue/{self._next_id}",
            "fields": {
                "summary": summary,
                "description": fields.get("description"),
                "labels": list(labels),
                "priority": {"name": priority, "id": PRIORITIES[priority]} if priority else None,
                "issuetype": {"name": issuetype, "id": ISSUE_TYPES[issuetype]},
                "project": {"key": key, "id": self.projects[key]},
                "status": self._status("10000"),
                "assignee": None,
                "created": _now(),
            },
        }
        self._issues[issue_key] = issue
        self._comments[issue_key] = []
        return 201, {"id": issue["id"], "key": issue_key, "self": issue["self"]}

    def _view(self, issue: dict[str, Any], fields: str | None) -> dict[str, Any]:
        out = copy.deepcopy(issue)
        if fields and fields not in ("*all", "*navigable"):
            wanted = {f.strip() for f in fields.split(",")}
            out["fields"] = {k: v for k, v in out["fields"].items() if k in wanted}
        return out

    def _search(self, call: Call, version: str, parts: list[str]) -> tuple[int, Any]:
        jql_endpoint = parts[1:2] == ["jql"]
        if self.cloud and not jql_endpoint and version in ("2", "3", "latest"):
            self.violations.append(
                f"{call.method} {call.path}: Jira Cloud removed /search; use /search/jql"
            )
            raise JiraError(
                410, "The requested API has been removed. Please migrate to /rest/api/3/search/jql"
            )
        if not self.cloud and jql_endpoint:
            raise JiraError(404, "null for uri: " + call.path)
        params = dict(call.query)
        if call.method == "POST" and isinstance(call.body, dict):
            params.update({k: v for k, v in call.body.items() if isinstance(v, str | int)})
        jql = str(params.get("jql") or "")
        matches = self._jql(jql, bounded=jql_endpoint)
        limit = int(params.get("maxResults") or 50)
        fields = params.get("fields")
        issues = [self._view(i, str(fields) if fields else None) for i in matches[:limit]]
        if jql_endpoint:
            return 200, {"issues": issues, "isLast": True}
        return 200, {"startAt": 0, "maxResults": limit, "total": len(matches), "issues": issues}

    def _jql(self, jql: str, *, bounded: bool) -> list[dict[str, Any]]:
        where = re.split(r"(?i)\border\s+by\b", jql)[0].strip()
        if not where:
            if bounded:
                self.violations.append(f"unbounded JQL on /search/jql: {jql!r}")
                raise JiraError(400, "Unbounded JQL queries are not allowed here.")
            return list(self._issues.values())
        clauses = []
        for part in re.split(r"(?i)\s+AND\s+", where):
            m = _CLAUSE.match(part)
            if m is None:
                raise JiraError(400, f"Error in the JQL Query: cannot read {part!r}")
            value = m.group(2) if m.group(2) is not None else m.group(3)
            clauses.append((m.group(1).lower(), value.replace('\\"', '"')))

        def hit(issue: dict[str, Any]) -> bool:
            f = issue["fields"]
            for name, value in clauses:
                if name == "project" and f["project"]["key"] != value:
                    return False
                if name == "labels" and value not in f["labels"]:
                    return False
                if name == "key" and issue["key"] != value:
                    return False
                if name == "status" and f["status"]["name"].lower() != value.lower():
                    return False
                if name not in ("project", "labels", "key", "status"):
                    raise JiraError(400, f"Field '{name}' is not supported by the stand-in")
            return True

        return [i for i in self._issues.values() if hit(i)]

    def _users(self, query: dict[str, str]) -> tuple[int, Any]:
        if self.cloud:
            if query.get("username"):
                self.violations.append("Jira Cloud: user search by username (use query)")
                raise JiraError(400, "The query parameter 'username' is not supported in GDPR mode")
            term = query.get("query", "")
        else:
            term = query.get("username", "")
        term = term.lower()
        found = [
            self._user(w)
            for w in PEOPLE
            if term and (term in w[3].lower() or term in w[2].lower() or term == w[0])
        ]
        return 200, found

    def _on_issue(
        self, route: str, issue: dict[str, Any], call: Call, version: str
    ) -> tuple[int, Any]:
        key = issue["key"]
        if route == "get":
            return 200, self._view(issue, call.query.get("fields"))
        if route == "edit":
            fields = (call.body or {}).get("fields") or {}
            for name, value in fields.items():
                if name == "priority":
                    if (value or {}).get("name") not in PRIORITIES:
                        raise JiraError(400, errors={"priority": "Priority is not valid"})
                    issue["fields"]["priority"] = {
                        "name": value["name"],
                        "id": PRIORITIES[value["name"]],
                    }
                elif name == "description":
                    self._text_field(value, "description", version)
                    issue["fields"]["description"] = value
                elif name in ("summary", "labels"):
                    issue["fields"][name] = value
                else:
                    raise JiraError(
                        400, errors={name: f"Field '{name}' cannot be set. It is not on the screen"}
                    )
            return 204, None
        if route == "comments":
            comments = list(self._comments[key])
            if call.query.get("orderBy") == "-created":
                comments.reverse()
            limit = int(call.query.get("maxResults") or 50)
            return 200, {
                "startAt": 0,
                "maxResults": limit,
                "total": len(comments),
                "comments": comments[:limit],
            }
        if route == "comment":
            body = (call.body or {}).get("body")
            self._text_field(body, "comment", version)
            comment = {
                "id": str(20000 + sum(len(c) for c in self._comments.values())),
                "body": body,
                "author": self._bot(),
                "created": _now(),
            }
            self._comments[key].append(comment)
            self._event(issue, self._bot(), [], event_type="issue_commented", comment=comment)
            return 201, comment
        if route == "transitions":
            current = issue["fields"]["status"]["id"]
            return 200, {
                "expand": "transitions",
                "transitions": [
                    {
                        "id": tid,
                        "name": self.transition_names[tid],
                        "to": self._status(sid),
                        "hasScreen": False,
                        "isGlobal": True,
                        "isAvailable": True,
                    }
                    for tid, sid in TRANSITION_TO.items()
                    if sid != current and tid in self.transition_names
                ],
            }
        if route == "transition":
            tid = str(((call.body or {}).get("transition") or {}).get("id"))
            target = TRANSITION_TO.get(tid)
            if target is None or target == issue["fields"]["status"]["id"]:
                raise JiraError(
                    400, f"Transition id '{tid}' is not valid for this issue.", errors={}
                )
            self._set_status(issue, target, self._bot())
            return 204, None
        if route == "assignee":
            body = call.body or {}
            if self.cloud:
                if "name" in body or "key" in body:
                    self.violations.append(
                        f"PUT {call.path}: Jira Cloud takes accountId only, got {body!r}"
                    )
                    raise JiraError(400, "'accountId' must be the only user identifying query")
                handle = body.get("accountId")
            else:
                handle = body.get("name")
            if handle is None:
                self._set_assignee(issue, None, self._bot())
                return 204, None
            try:
                user = self.user(str(handle))
            except KeyError as exc:
                raise JiraError(
                    400, errors={"assignee": f"User '{handle}' does not exist."}
                ) from exc
            if self._id_of(user) != handle:
                raise JiraError(400, errors={"assignee": f"User '{handle}' does not exist."})
            self._set_assignee(issue, user, self._bot())
            return 204, None
        raise JiraError(404, "no such resource")

    def _set_status(self, issue: dict[str, Any], target: str, by: dict[str, Any]) -> None:
        old = issue["fields"]["status"]
        if old["id"] == target:
            return
        issue["fields"]["status"] = self._status(target)
        self._event(
            issue,
            by,
            [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fieldId": "status",
                    "from": old["id"],
                    "fromString": old["name"],
                    "to": target,
                    "toString": STATUSES[target]["name"],
                }
            ],
        )

    def _set_assignee(
        self, issue: dict[str, Any], user: dict[str, Any] | None, by: dict[str, Any]
    ) -> None:
        old = issue["fields"]["assignee"]
        if self._id_of(old) == self._id_of(user):
            return
        issue["fields"]["assignee"] = user
        self._event(
            issue,
            by,
            [
                {
                    "field": "assignee",
                    "fieldtype": "jira",
                    "fieldId": "assignee",
                    "from": self._id_of(old),
                    "fromString": old["displayName"] if old else None,
                    "to": self._id_of(user),
                    "toString": user["displayName"] if user else None,
                }
            ],
        )

    def _event(
        self,
        issue: dict[str, Any],
        by: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        event_type: str = "issue_generic",
        comment: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": event_type,
            "user": by,
            "issue": copy.deepcopy(issue),
        }
        if items:
            body["changelog"] = {"id": str(30000 + len(self._events)), "items": items}
        if comment is not None:
            body["comment"] = copy.deepcopy(comment)
        self._events.append(body)
