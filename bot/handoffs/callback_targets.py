"""Which hosts a handoff's decision may be POSTed to (§8): pure rules, no I/O.

By default a callback goes only to a public address over https. An operator lists the private
targets their agents live at (`callback_allow`: host names or networks); those may use plain
http. In local mode the bot may call back to loopback. The caller resolves the host and hands
every address over: a name passes only when each of its addresses does.

Host text is read the way the C resolver reads it, so `2130706433`, `0x7f.1` and `0177.0.0.1`
are the loopback address they spell, and an IPv6 address that embeds an IPv4 one (mapped,
NAT64, 6to4) is judged by the IPv4 address inside.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "AllowList",
    "IPAddress",
    "IPNetwork",
    "RefusedTarget",
    "address_kind",
    "allow_entry",
    "check_target",
    "literal_address",
    "normalise_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedTarget(ValueError):
    """The callback target is not allowed; the message says why in one sentence."""


def _nets(kind: str, *cidrs: str) -> list[tuple[IPNetwork, str]]:
    return [(ipaddress.ip_network(c), kind) for c in cidrs]


# IANA's special-purpose registries, most specific first; anything else is public
_SPECIAL: list[tuple[IPNetwork, str]] = [
    *_nets(
        "a cloud metadata address",
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2/32",  # AWS ECS task metadata
        "100.100.100.200/32",  # Alibaba Cloud
        "fd00:ec2::254/128",  # AWS over IPv6
    ),
    *_nets("the unspecified address", "0.0.0.0/32", "::/128"),
    *_nets("a loopback address", "127.0.0.0/8", "::1/128"),
    *_nets("a link-local address", "169.254.0.0/16", "fe80::/10"),
    *_nets("a multicast address", "224.0.0.0/4", "ff00::/8"),
    *_nets(
        "a private address",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated)
        "64:ff9b:1::/48",  # local-use NAT64
    ),
    *_nets(
        "a reserved address",
        "0.0.0.0/8",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",  # includes the broadcast address
        "::/8",  # includes the IPv4-compatible addresses
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
    ),
]

_NEVER = {"the unspecified address", "a multicast address"}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# what inet_aton reads as one part of an IPv4 address: decimal, 0-octal or 0x-hex
_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def address_kind(address: IPAddress) -> str:
    """Say what an address is: 'public', or the special range it belongs to."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return address_kind(inner)
    for network, kind in _SPECIAL:
        if address.version == network.version and address in network:
            return kind
    return "public"


def _part(text: str) -> int:
    if text.startswith("0x"):
        return int(text[2:] or "0", 16)
    if len(text) > 1 and text.startswith("0"):
        return int(text, 8)
    return int(text)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """Read `host` as inet_aton does (1 to 4 parts, each decimal, octal or hex), else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.match(p) for p in parts):
        return None
    *head, last = [_part(p) for p in parts]
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for i, value in enumerate(head):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def normalise_host(host: str) -> str:
    """Lower-case a host and drop the root's trailing dot."""
    return host.strip().lower().rstrip(".")


def literal_address(host: str) -> IPAddress | None:
    """Return the address a host names literally (any IPv4 spelling, or IPv6), else None.

    Raises RefusedTarget for an IPv6 literal that does not parse.
    """
    host = normalise_host(host).removeprefix("[").removesuffix("]")
    if ":" in host:
        # a zone (`fe80::1%25eth0`) picks an interface, not an address
        text = unquote(host).split("%", 1)[0]
        try:
            return ipaddress.IPv6Address(text)
        except ValueError as exc:
            raise RefusedTarget(f"{host!r} is not a valid IPv6 address") from exc
    return _inet_aton(host)


def _is_host_name(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def allow_entry(entry: str) -> str | IPNetwork:
    """Read one `callback_allow` entry: a network (`10.0.0.0/8`, an address) or a host name."""
    text = entry.strip()
    if not text:
        raise ValueError("an empty callback_allow entry allows nothing; remove it")
    try:
        network: IPNetwork = ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    else:
        if network.prefixlen == 0:
            raise ValueError(
                f"{text!r} would allow every address, cloud metadata included; "
                "list the networks your agents live in"
            )
        return network
    name = normalise_host(text)
    if "/" in text or ":" in text or not _is_host_name(name) or _inet_aton(name) is not None:
        raise ValueError(
            f"{text!r} is neither a host name (hooks.internal.example) "
            "nor a network (10.0.0.0/8, fd00::/8)"
        )
    return name


@dataclass(frozen=True)
class AllowList:
    """Private targets an operator allows (by host name or network), and whether loopback is."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    loopback: bool = False

    @classmethod
    def of(cls, entries: Iterable[str], *, loopback: bool = False) -> AllowList:
        """Build from `callback_allow` entries (already validated by the policy file)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            parsed = allow_entry(entry)
            if isinstance(parsed, str):
                hosts.add(parsed)
            else:
                networks.append(parsed)
        return cls(frozenset(hosts), tuple(networks), loopback)

    def in_networks(self, address: IPAddress) -> bool:
        """Return True when an allowed network holds the address (or its embedded IPv4)."""
        inner = _embedded_ipv4(address)
        return any(
            candidate in network
            for candidate in (address, inner)
            if candidate is not None
            for network in self.networks
            if network.version == candidate.version
        )


_HINT = "list private targets under handoffs.callback_allow or sources.<name>.callback_allow"


def check_target(
    *, scheme: str, host: str, addresses: Sequence[IPAddress], allow: AllowList
) -> None:
    """Raise RefusedTarget unless a callback to `host` at every one of `addresses` is allowed.

    Public addresses need https. A host listed by name, addresses inside a listed network and,
    when `allow.loopback`, loopback addresses may also use http. A listed name never unlocks the
    unspecified, multicast or metadata addresses: only a listed network can allow metadata.
    """
    name = normalise_host(host)
    if scheme not in ("http", "https"):
        raise RefusedTarget(f"scheme {scheme!r} is not allowed; use https")
    if not addresses:
        raise RefusedTarget(f"{name} has no address")
    listed_name = name in allow.hosts
    privileged = True  # every address is allowed by name, network or local mode
    for address in addresses:
        kind = address_kind(address)
        shown = name if str(address) == name else f"{name} ({address})"
        if kind in _NEVER:
            raise RefusedTarget(f"{shown} is {kind}; callbacks cannot go there")
        if allow.in_networks(address):
            continue
        if allow.loopback and kind == "a loopback address":
            continue
        if listed_name and kind != "a cloud metadata address":
            continue
        if kind != "public":
            raise RefusedTarget(
                f"{shown} is {kind}; callbacks go only to public addresses unless the policy "
                f"allows the target ({_HINT})"
            )
        privileged = False
    if scheme == "http" and not privileged:
        raise RefusedTarget(
            f"plain http to {name} is not allowed; use https (http is for targets listed "
            f"under callback_allow)"
        )
