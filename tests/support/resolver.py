"""A resolver the test programs: no DNS leaves the machine.

resolver = FakeResolver({"agent.example.com": ["93.184.216.34"]})
resolver.answer("agent.example.com", ["127.0.0.1"])   # the next lookups say otherwise
resolver.lookups                                       # every (host, port) asked
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping, Sequence

from bot.handoffs.callback_targets import IPAddress
from bot.integrations.callback_targets import HostNotFound, ResolutionFailed

__all__ = ["PUBLIC", "FakeResolver"]

PUBLIC = "93.184.216.34"  # a public address; nothing connects to it in the tests


class FakeResolver:
    """Answers from a table; an unknown name does not exist, `failing` names time out."""

    def __init__(self, table: Mapping[str, Sequence[str]] | None = None) -> None:
        self._table: dict[str, list[IPAddress]] = {}
        self._lock = threading.Lock()
        self.failing: set[str] = set()
        self.lookups: list[tuple[str, int]] = []
        for host, addresses in (table or {}).items():
            self.answer(host, addresses)

    def answer(self, host: str, addresses: Sequence[str]) -> None:
        with self._lock:
            self._table[host.lower().rstrip(".")] = [ipaddress.ip_address(a) for a in addresses]

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        name = host.lower().rstrip(".")
        with self._lock:
            self.lookups.append((host, port))
            if name in self.failing:
                raise ResolutionFailed(f"could not resolve {host}: temporary failure")
            if name not in self._table:
                raise HostNotFound(f"{host} does not resolve")
            return list(self._table[name])
