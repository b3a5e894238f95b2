"""Slack user-group membership for role checks, cached briefly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

__all__ = ["SlackGroups"]

log = logging.getLogger(__name__)


class SlackGroups:
    """Look up user-group members with `usergroups.users.list`; a lookup that fails grants nothing."""

    def __init__(
        self,
        client: WebClient,
        *,
        ttl: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def members(self, group_ids: Collection[str]) -> dict[str, frozenset[str]]:
        """Return the members of each group (empty for a group Slack would not list)."""
        return {group: self._members(group) for group in group_ids}

    def _members(self, group: str) -> frozenset[str]:
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(group)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            resp = self._client.usergroups_users_list(usergroup=group)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("cannot list members of user group %s: %s", group, exc)
            return cached[1] if cached is not None else frozenset()
        listed: list[str] = resp.get("users", [])
        users = frozenset(str(u) for u in listed)
        with self._lock:
            self._cache[group] = (now, users)
        return users
