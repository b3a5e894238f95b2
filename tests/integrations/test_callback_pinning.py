"""Callbacks over real sockets: the connection goes to the checked address, and the URL's host
name is what the server sees in Host, in SNI and in the certificate check."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from bot.config import Policy, Source
from bot.integrations.callback_http import HttpCallbacks
from bot.integrations.callback_targets import CallbackGuard
from bot.integrations.ports import GiveUp, RetryLater
from tests.standins.agent import AgentStandin
from tests.support.resolver import FakeResolver

NAME = "agent.internal.test"
POLICY = Policy(sources={"agents": Source(kind="agent", callback_allow=["127.0.0.1/32"])})


class _TlsAgent(ThreadingHTTPServer):
    """An agent's https endpoint on loopback with a certificate for NAME only."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, bytes]] = []
        self.sni: list[str | None] = []

        def remember(_sock: object, name: str | None, _ctx: object) -> None:
            self.sni.append(name)

        context.sni_callback = remember
        self.socket = context.wrap_socket(self.socket, server_side=True)


class _Handler(BaseHTTPRequestHandler):
    server: _TlsAgent

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.headers["Host"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_agent(ca: trustme.CA) -> Iterator[_TlsAgent]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(NAME).configure_cert(context)
    server = _TlsAgent(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def callbacks(resolver: FakeResolver, verify: ssl.SSLContext | bool = True) -> HttpCallbacks:
    guard = CallbackGuard(policy=POLICY, resolver=resolver, local_mode=False)
    return HttpCallbacks(guard=guard, verify=verify, timeout=5)


def post(sender: HttpCallbacks, url: str) -> int:
    return sender.post(url=url, body=b"{}", secret="s", idempotency_key="k", source="agents")


def test_plain_http_to_an_allowed_name_reaches_the_checked_address_with_its_host() -> None:
    resolver = FakeResolver({NAME: ["127.0.0.1"]})
    with AgentStandin() as agent:
        sender = callbacks(resolver)
        assert post(sender, f"http://{NAME}:{agent.port}/decisions") == 200
        sender.close()
        [delivery] = agent.delivered()
    assert delivery.headers["host"] == f"{NAME}:{agent.port}"
    assert resolver.lookups == [(NAME, agent.port)]


def test_https_keeps_the_name_for_sni_and_the_certificate(
    ca: trustme.CA, tls_agent: _TlsAgent
) -> None:
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    port = tls_agent.server_address[1]
    sender = callbacks(FakeResolver({NAME: ["127.0.0.1"]}), verify=trust)
    assert post(sender, f"https://{NAME}:{port}/decisions") == 204
    assert tls_agent.sni == [NAME]
    assert tls_agent.seen == [(f"{NAME}:{port}", b"{}")]
    # the certificate names the host, not the address: asking for the address fails the check
    with pytest.raises(RetryLater, match="CERTIFICATE_VERIFY_FAILED"):
        post(sender, f"https://127.0.0.1:{port}/decisions")
    sender.close()


def test_a_name_that_turns_private_after_the_handoff_was_accepted_is_not_called() -> None:
    resolver = FakeResolver({NAME: ["127.0.0.1"]})
    with AgentStandin() as agent:
        sender = callbacks(resolver)
        url = f"http://{NAME}:{agent.port}/decisions"
        assert post(sender, url) == 200
        resolver.answer(NAME, ["127.0.0.2"])  # loopback, but outside the allowed 127.0.0.1/32
        with pytest.raises(GiveUp, match=r"127\.0\.0\.2"):
            post(sender, url)
        sender.close()
        assert len(agent.requests) == 1
