"""The callback guard on any text an agent may send: a verdict, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Policy
from bot.handoffs.callback_targets import address_kind
from bot.integrations.callback_targets import (
    CallbackGuard,
    HostNotFound,
    RefusedTarget,
    ResolutionFailed,
    SystemResolver,
)
from tests.support.resolver import PUBLIC, FakeResolver

GUARD = CallbackGuard(
    policy=Policy(), resolver=FakeResolver({"agent.example.com": [PUBLIC]}), local_mode=False
)
_host = st.one_of(
    st.text(alphabet="abc.-:[]%@0x7f129\\/ ", max_size=30),
    st.integers(min_value=0, max_value=2**32 + 5).map(str),
    st.sampled_from(["agent.example.com", "localhost", "[::1]", "0x7f.1", "bücher.example"]),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["http", "https", "ftp", "HTTPS", ""]), _host, st.text(max_size=20))
def test_any_url_gets_a_verdict(scheme: str, host: str, rest: str) -> None:
    url = f"{scheme}://{host}/{rest}"
    try:
        target = GUARD.vet(url, source="agents")
    except (RefusedTarget, HostNotFound, ResolutionFailed):
        return
    # what passes is https to public addresses only
    assert target.url.scheme == "https"
    assert target.addresses
    assert all(address_kind(a) == "public" for a in target.addresses)


def test_the_system_resolver_reads_the_hosts_file() -> None:
    # localhost is answered from /etc/hosts: no DNS leaves the machine
    addresses = SystemResolver().resolve("localhost", 80)
    assert addresses and all(a.is_loopback for a in addresses)
