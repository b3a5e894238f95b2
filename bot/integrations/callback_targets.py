"""Vet a handoff's callback URL against the policy: parse, resolve, check every address (§8).

The same check runs when the handoff arrives (a refused target is a 422 naming `callback_url`)
and again right before each delivery, whose connection then goes to one of the addresses that
were checked: a name that resolves elsewhere the second time (DNS rebinding) is caught, and
nothing resolves the name a third time behind the check's back.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol

import httpx

from bot.config import Policy
from bot.handoffs.callback_targets import (
    AllowList,
    IPAddress,
    RefusedTarget,
    check_target,
    literal_address,
    normalise_host,
)

__all__ = [
    "CallbackGuard",
    "HostNotFound",
    "RefusedTarget",
    "ResolutionFailed",
    "Resolver",
    "SystemResolver",
    "VettedTarget",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
RESOLVE_TIMEOUT_S = 5.0
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class HostNotFound(Exception):
    """The name does not exist in DNS."""


class ResolutionFailed(Exception):
    """DNS gave no answer just now (timeout, server failure); it may later."""


class Resolver(Protocol):
    """Turns a host name into the addresses a connection to it could reach."""

    def resolve(self, host: str, port: int) -> list[IPAddress]: ...


_NOT_FOUND = {
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
}


class SystemResolver:
    """The operating system's resolver (`getaddrinfo`), as any connection would use it."""

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Return every address of `host`, in the resolver's order, without repeats."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in _NOT_FOUND:
                raise HostNotFound(f"{host} does not resolve") from exc
            raise ResolutionFailed(f"could not resolve {host}: {exc.strerror}") from exc
        except UnicodeError as exc:
            raise HostNotFound(f"{host} is not a valid host name") from exc
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        return found


@dataclass(frozen=True)
class VettedTarget:
    """A callback URL that passed the check, with the addresses a connection may use."""

    url: httpx.URL
    host: str  # as the URL spells it (ASCII): the Host header and TLS name
    addresses: tuple[IPAddress, ...]
    named: bool  # the URL names a host rather than spelling an address

    def pinned(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by one checked address."""
        return self.url.copy_with(host=str(address))


class CallbackGuard:
    """The callback policy: public https by default, `callback_allow` targets, local loopback."""

    def __init__(self, *, policy: Policy, resolver: Resolver, local_mode: bool) -> None:
        self._policy = policy
        self._resolver = resolver
        self._local_mode = local_mode

    def allow_list(self, source: str) -> AllowList:
        """What a source's callbacks may reach beyond public https: policy-wide and its own."""
        configured = self._policy.sources.get(source)
        entries = [*self._policy.handoffs.callback_allow]
        if configured is not None:
            entries += configured.callback_allow
        return AllowList.of(entries, loopback=self._local_mode)

    def vet(self, url: str, *, source: str) -> VettedTarget:
        """Check `url` for `source`; raise RefusedTarget, HostNotFound or ResolutionFailed."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise RefusedTarget(f"is not a valid URL: {exc}") from exc
        host = parsed.raw_host.decode("ascii")
        if parsed.scheme not in DEFAULT_PORTS or not host:
            raise RefusedTarget("must be an absolute https:// URL")
        literal = literal_address(host)
        name = normalise_host(host)
        addresses: list[IPAddress]
        if literal is not None:
            addresses = [literal]
        elif name == "localhost" or name.endswith(".localhost"):
            # RFC 6761: these names are loopback whatever a resolver says
            addresses = list(_LOOPBACK)
        else:
            addresses = self._resolver.resolve(host, parsed.port or DEFAULT_PORTS[parsed.scheme])
        check_target(
            scheme=parsed.scheme, host=host, addresses=addresses, allow=self.allow_list(source)
        )
        return VettedTarget(
            url=parsed, host=host, addresses=tuple(addresses), named=literal is None
        )

    async def vet_soon(self, url: str, *, source: str) -> VettedTarget:
        """`vet` off the event loop, giving up on a resolver that hangs."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.vet, url, source=source), RESOLVE_TIMEOUT_S
            )
        except TimeoutError as exc:
            raise ResolutionFailed(
                f"resolving the callback host took longer than {RESOLVE_TIMEOUT_S:g} s"
            ) from exc
