"""Jira adapter on the `jira` package: Cloud and Data Center, told apart by `serverInfo`.

Jira Cloud authenticates with an account email and an API token and names people by
`accountId`; Data Center takes a personal access token (or a user name and password) and names
people by user name. Both get REST v2 with wiki-markup descriptions and comments.

Errors leave this module translated for the delivery worker:
    RetryLater  -- Jira unreachable, slow (timeout), 429 with Retry-After, 5xx, 401
    GiveUp      -- Jira refused the request for good (400, 403, 404, no done transition, no user)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import requests
from jira import JIRA, JIRAError

from bot.integrations.ports import GiveUp, RetryLater, TicketDraft, TicketRef, TicketUser

__all__ = ["JiraTracker"]

log = logging.getLogger(__name__)

DONE_CATEGORY = "done"
# the comments a retry looks through for its own marker: the newest, where a lost one would be
RECENT_COMMENTS = 50


class _Client(JIRA):
    """The `jira` client, with the writes it makes in a way Jira's spec or Cloud does not take."""

    def put_assignee(self, key: str, payload: dict[str, Any]) -> None:
        """Assign without `assign_issue`'s user search (which cannot find a Cloud accountId)."""
        self._session.put(self._get_url(f"issue/{key}/assignee"), data=json.dumps(payload))

    def post_transition(self, key: str, transition_id: str) -> None:
        """Transition with the id as a string, as the REST spec has it (the package sends an int)."""
        self._session.post(
            self._get_url(f"issue/{key}/transitions"),
            data=json.dumps({"transition": {"id": transition_id}}),
        )

    def put_fields(self, key: str, fields: dict[str, Any]) -> None:
        """Edit fields of an issue by key, without fetching it first."""
        self._session.put(self._get_url(f"issue/{key}"), data=json.dumps({"fields": fields}))


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, JIRAError):
        status = exc.status_code or 0
        text = (exc.text or "")[:300]
        if status == 429:
            headers = exc.response.headers if exc.response is not None else {}
            after = headers.get("Retry-After")
            try:
                retry_after = float(after) if after else 5.0
            except ValueError:
                retry_after = 5.0
            return RetryLater(f"Jira {what}: rate limited", retry_after)
        if status >= 500 or status in (0, 401, 408, 409):
            # 401: credentials can be put right without losing what waits to be delivered
            if status == 401:
                log.error("Jira %s: authentication failed (HTTP 401); check JIRA_* settings", what)
            return RetryLater(f"Jira {what}: HTTP {status} {text}")
        log.error("Jira %s refused: HTTP %s %s", what, status, text)
        return GiveUp(f"Jira {what}: HTTP {status} {text}")
    return RetryLater(f"Jira {what}: {type(exc).__name__}: {exc}")


class JiraTracker:
    """A TicketTracker on Jira; the client connects on first use, never at start-up."""

    def __init__(
        self,
        *,
        url: str,
        user: str | None,
        token: str,
        timeout: float = 10.0,
    ) -> None:
        self._url = url.rstrip("/")
        self._user = user
        self._token = token
        self._timeout = timeout
        self._client: _Client | None = None
        self._lock = threading.Lock()

    def _jira(self) -> _Client:
        with self._lock:
            if self._client is None:
                try:
                    self._client = _Client(
                        server=self._url,
                        basic_auth=(self._user, self._token) if self._user else None,
                        token_auth=None if self._user else self._token,
                        # the delivery worker retries with backoff; the client must not sleep
                        max_retries=0,
                        timeout=self._timeout,
                        get_server_info=True,
                    )
                except (JIRAError, requests.RequestException) as exc:
                    raise _translate(exc, "serverInfo") from exc
                log.info(
                    "Jira at %s: %s",
                    self._url,
                    "Cloud" if self._client._is_cloud else "Data Center",
                )
            return self._client

    @property
    def cloud(self) -> bool:
        """Return True for Jira Cloud (asks Jira once)."""
        return bool(self._jira()._is_cloud)

    def browse_url(self, key: str) -> str:
        """Return the address a person opens the ticket at."""
        return f"{self._url}/browse/{key}"

    def create(self, draft: TicketDraft) -> TicketRef:
        fields: dict[str, Any] = {
            "project": {"key": draft.project},
            "issuetype": {"name": draft.issue_type},
            "summary": draft.summary,
            "description": draft.description,
            "labels": [*draft.labels, draft.dedup_label],
        }
        if draft.priority:
            fields["priority"] = {"name": draft.priority}
        try:
            try:
                issue = self._jira().create_issue(fields=fields, prefetch=False)
            except JIRAError as exc:
                # priority schemes differ per project: a ticket without one beats no ticket
                if exc.status_code != 400 or "priority" not in (exc.text or "").lower():
                    raise
                log.warning(
                    "Jira project %s refused priority %r; filing without it (set jira.priorities)",
                    draft.project,
                    draft.priority,
                )
                del fields["priority"]
                issue = self._jira().create_issue(fields=fields, prefetch=False)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "create issue") from exc
        return TicketRef(key=str(issue.key), url=self.browse_url(str(issue.key)))

    def find(self, *, project: str, label: str) -> TicketRef | None:
        jql = f'project = "{project}" AND labels = "{label}" ORDER BY created ASC'
        try:
            # search_issues takes /search/jql on Cloud (/search is gone there) and /search on DC
            found = self._jira().search_issues(
                jql, maxResults=5, fields=["labels"], json_result=True
            )
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "search") from exc
        assert isinstance(found, dict)
        issues = found.get("issues") or []
        if not issues:
            return None
        if len(issues) > 1:
            log.warning("%d Jira tickets carry %s; using the oldest", len(issues), label)
        key = str(issues[0]["key"])
        return TicketRef(key=key, url=self.browse_url(key))

    def comment(self, *, key: str, body: str) -> None:
        try:
            self._jira().add_comment(key, body)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "add comment") from exc

    def has_comment(self, *, key: str, marker: str) -> bool:
        try:
            comments = self._jira().comments(key, order_by="-created", max_results=RECENT_COMMENTS)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "read comments") from exc
        return any(marker in str(getattr(c, "body", "")) for c in comments)

    def resolve(self, *, key: str, preferred: Sequence[str]) -> str | None:
        jira = self._jira()
        try:
            if self._category(key) == DONE_CATEGORY:
                return None
            transitions: list[dict[str, Any]] = jira.transitions(key)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "read transitions") from exc
        chosen = _done_transition(transitions, preferred)
        if chosen is None:
            names = ", ".join(repr(t.get("name")) for t in transitions) or "none"
            raise GiveUp(f"Jira {key}: no transition into a done status (available: {names})")
        try:
            jira.post_transition(key, str(chosen["id"]))
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "transition") from exc
        return str((chosen.get("to") or {}).get("name") or chosen.get("name"))

    def reopen(self, *, key: str) -> str | None:
        jira = self._jira()
        try:
            if self._category(key) != DONE_CATEGORY:
                return None
            transitions: list[dict[str, Any]] = jira.transitions(key)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "read transitions") from exc
        chosen = next((t for t in transitions if _category_of(t) != DONE_CATEGORY), None)
        if chosen is None:
            raise GiveUp(f"Jira {key}: no transition out of done")
        try:
            jira.post_transition(key, str(chosen["id"]))
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "transition") from exc
        return str((chosen.get("to") or {}).get("name") or chosen.get("name"))

    def _category(self, key: str) -> str | None:
        issue = self._jira().issue(key, fields="status")
        category = issue.raw["fields"]["status"].get("statusCategory") or {}
        return str(category["key"]) if category.get("key") else None

    def assign(self, *, key: str, account: str) -> None:
        jira = self._jira()
        payload = {"accountId": account} if jira._is_cloud else {"name": account}
        try:
            jira.put_assignee(key, payload)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "assign") from exc

    def account_for(self, user: TicketUser) -> str:
        if user.account:
            return user.account
        email = user.email
        if not email:
            raise GiveUp("nobody to assign: no Jira account and no email")
        jira = self._jira()
        try:
            if jira._is_cloud:
                users = jira.search_users(query=email, maxResults=5)
            else:
                users = jira.search_users(user=email, maxResults=5)
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "user search") from exc
        exact = [u for u in users if str(getattr(u, "emailAddress", "")).lower() == email.lower()]
        match = (exact or list(users))[:1]
        if not match:
            raise GiveUp(f"no Jira user with the email {email}")
        found = match[0]
        return str(found.accountId if jira._is_cloud else found.name)

    def set_priority(self, *, key: str, priority: str) -> None:
        try:
            self._jira().put_fields(key, {"priority": {"name": priority}})
        except (JIRAError, requests.RequestException) as exc:
            raise _translate(exc, "set priority") from exc


def _done_transition(
    transitions: list[dict[str, Any]], preferred: Sequence[str]
) -> dict[str, Any] | None:
    """Pick a transition by configured name, else the first one into a done status category."""
    by_name = {str(t.get("name", "")).lower(): t for t in transitions}
    for name in preferred:
        if name.lower() in by_name:
            return by_name[name.lower()]
    return next((t for t in transitions if _category_of(t) == DONE_CATEGORY), None)


def _category_of(transition: dict[str, Any]) -> str | None:
    """Return the status category a transition leads to (`new`, `indeterminate`, `done`)."""
    category = ((transition.get("to") or {}).get("statusCategory") or {}).get("key")
    return str(category) if category else None
