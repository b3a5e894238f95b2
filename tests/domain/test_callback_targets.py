"""Where a handoff's callback may go: public https by default, listed private targets, local loopback."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.handoffs.callback_targets import (
    AllowList,
    RefusedTarget,
    address_kind,
    allow_entry,
    check_target,
    literal_address,
)

PUBLIC = ipaddress.ip_address("93.184.216.34")
NONE = AllowList()


def check(url_host: str, *addresses: str, scheme: str = "https", allow: AllowList = NONE) -> None:
    check_target(
        scheme=scheme,
        host=url_host,
        addresses=[ipaddress.ip_address(a) for a in addresses],
        allow=allow,
    )


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0.0.0.0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("169.254.169.254", "169.254.169.254"),
        ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254"),
    ],
)
def test_every_spelling_of_an_address_is_read_as_the_resolver_reads_it(
    host: str, address: str
) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["agent.example.com", "08.1", "1.2.3.256", "1.2.3.4.5"])
def test_names_are_not_addresses(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a private address"),
        ("fd12::1", "a private address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("192.0.2.1", "a reserved address"),
        ("2001:db8::1", "a reserved address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.170.2", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        # IPv6 that carries an IPv4 address is judged by the IPv4 inside
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("64:ff9b::a00:1", "a private address"),
        ("2002:7f00:1::", "a loopback address"),
        ("::127.0.0.1", "a reserved address"),
        ("93.184.216.34", "public"),
        ("2606:2800:220:1:248:1893:25c8:1946", "public"),
        ("::ffff:93.184.216.34", "public"),
    ],
)
def test_address_kinds(address: str, kind: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("host", "address", "says"),
    [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1 is a loopback address"),
        ("localhost", "127.0.0.1", "localhost (127.0.0.1) is a loopback address"),
        ("2130706433", "127.0.0.1", "2130706433 (127.0.0.1) is a loopback address"),
        ("::1", "::1", "::1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0", "the unspecified address"),
        ("169.254.169.254", "169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "fd00:ec2::254", "a cloud metadata address"),
        ("10.0.0.5", "10.0.0.5", "a private address"),
        ("metadata.example", "169.254.169.254", "a cloud metadata address"),
    ],
)
def test_non_public_targets_are_refused_by_default(host: str, address: str, says: str) -> None:
    with pytest.raises(RefusedTarget, match="callback") as refused:
        check(host, address)
    assert says in str(refused.value)


def test_a_name_passes_only_when_every_address_does() -> None:
    check("agent.example.com", str(PUBLIC), "2606:2800:220:1:248:1893:25c8:1946")
    with pytest.raises(RefusedTarget, match=r"agent.example.com \(10.0.0.7\) is a private"):
        check("agent.example.com", str(PUBLIC), "10.0.0.7")


def test_public_targets_need_https() -> None:
    check("agent.example.com", str(PUBLIC))
    with pytest.raises(
        RefusedTarget, match=re.escape("plain http to agent.example.com is not allowed")
    ):
        check("agent.example.com", str(PUBLIC), scheme="http")
    with pytest.raises(RefusedTarget, match="scheme 'ftp'"):
        check("agent.example.com", str(PUBLIC), scheme="ftp")


def test_listed_networks_and_names_allow_private_targets_over_http() -> None:
    allow = AllowList.of(["10.0.0.0/8", "hooks.internal.example", "fd00:1::/32"])
    check("10.1.2.3", "10.1.2.3", scheme="http", allow=allow)
    check("agents.corp", "10.9.9.9", scheme="http", allow=allow)
    check("hooks.internal.example", "192.168.7.7", scheme="http", allow=allow)
    check("HOOKS.internal.example.", "192.168.7.7", allow=allow)
    check("v6.corp", "fd00:1::5", allow=allow)
    check("mapped.corp", "::ffff:10.0.0.1", allow=allow)
    # only what is listed
    with pytest.raises(RefusedTarget, match=re.escape("192.168.7.7")):
        check("other.internal.example", "192.168.7.7", allow=allow)
    with pytest.raises(RefusedTarget, match=re.escape("127.0.0.1")):
        check("agents.corp", "10.9.9.9", "127.0.0.1", allow=allow)
    # a listed public name may use http too; an unlisted one may not
    check("hooks.internal.example", str(PUBLIC), scheme="http", allow=allow)
    with pytest.raises(RefusedTarget, match="plain http"):
        check("agents.corp", "10.9.9.9", str(PUBLIC), scheme="http", allow=allow)


def test_a_listed_name_never_unlocks_metadata_unspecified_or_multicast() -> None:
    allow = AllowList.of(["hooks.internal.example"])
    for address in ("169.254.169.254", "0.0.0.0", "224.0.0.1", "fd00:ec2::254"):
        with pytest.raises(RefusedTarget):
            check("hooks.internal.example", address, allow=allow)
    # metadata only when a network lists it on purpose; the unspecified address never
    check("169.254.169.254", "169.254.169.254", allow=AllowList.of(["169.254.0.0/16"]))
    with pytest.raises(RefusedTarget, match="unspecified"):
        check("0.0.0.0", "0.0.0.0", allow=AllowList.of(["0.0.0.0/8"]))


def test_local_mode_allows_loopback_and_nothing_else_private() -> None:
    local = AllowList(loopback=True)
    check("127.0.0.1", "127.0.0.1", scheme="http", allow=local)
    check("localhost", "127.0.0.1", "::1", scheme="http", allow=local)
    check("2130706433", "127.0.0.1", scheme="http", allow=local)
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0"):
        with pytest.raises(RefusedTarget):
            check(address, address, allow=local)


@pytest.mark.parametrize(
    ("entry", "read"),
    [
        ("10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8")),
        ("10.1.2.3", ipaddress.ip_network("10.1.2.3/32")),
        ("10.1.2.3/8", ipaddress.ip_network("10.0.0.0/8")),
        ("fd00::/8", ipaddress.ip_network("fd00::/8")),
        ("hooks.internal.example", "hooks.internal.example"),
        ("Hooks.Internal.Example.", "hooks.internal.example"),
        ("agent-1", "agent-1"),
    ],
)
def test_allow_entries(entry: str, read: object) -> None:
    assert allow_entry(entry) == read


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("0.0.0.0/0", "would allow every address"),
        ("::/0", "would allow every address"),
        ("", "empty"),
        ("not a host!", "neither a host name"),
        ("10.0.0.300/8", "neither a host name"),
        ("hooks.example:8443", "neither a host name"),
        ("https://hooks.example/", "neither a host name"),
        ("2130706433", "neither a host name"),
        ("-bad.example", "neither a host name"),
    ],
)
def test_bad_allow_entries_say_what_is_expected(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        allow_entry(entry)


_special = st.sampled_from(
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "0.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "::1/128",
    ]
).map(ipaddress.ip_network)


@given(_special, st.integers(min_value=0), st.sampled_from(["plain", "mapped", "nat64"]))
def test_no_spelling_of_a_non_public_address_gets_through(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, offset: int, form: str
) -> None:
    address = network[offset % network.num_addresses]
    if isinstance(address, ipaddress.IPv4Address) and form != "plain":
        prefix = "::ffff:" if form == "mapped" else "64:ff9b::"
        address = ipaddress.IPv6Address(f"{prefix}{address}")
    assert address_kind(address) != "public"
    with pytest.raises(RefusedTarget):
        check("agent.example.com", str(PUBLIC), str(address))
    if isinstance(address, ipaddress.IPv4Address):
        # and written as one decimal number, as a URL may
        assert literal_address(str(int(address))) == address
        with pytest.raises(RefusedTarget):
            check(str(int(address)), str(address))
