"""api.proxies: forwarding headers change the client and scheme only when the peer is a trusted proxy."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from api.proxies import TrustedProxies

NETWORKS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def seen_by_app(peer: str, headers: dict[str, str], networks: Any = NETWORKS) -> Scope:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(scope)

    scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(TrustedProxies(app, networks)(scope, None, None))  # type: ignore[arg-type]
    return seen


def test_an_untrusted_peer_keeps_its_address_and_scheme_whatever_it_claims() -> None:
    scope = seen_by_app("127.0.0.1", {"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": "https"})

    assert scope["client"] == ("127.0.0.1", 1234) and scope["scheme"] == "http"


def test_no_networks_configured_trusts_nobody() -> None:
    scope = seen_by_app("10.0.0.1", {"X-Forwarded-For": "203.0.113.1"}, networks=())

    assert scope["client"] == ("10.0.0.1", 1234)


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.1", "203.0.113.1"),
        ("198.51.100.9, 203.0.113.1", "203.0.113.1"),  # the left part is the client's own claim
        ("203.0.113.1, 10.0.0.7", "203.0.113.1"),  # a chain of trusted proxies is walked through
        ("2001:db8::1, fd00::2", "2001:db8::1"),
        ("10.0.0.7", "10.0.0.1"),  # only proxies: the peer stays the client
        ("not-an-address", "10.0.0.1"),
        ("", "10.0.0.1"),
    ],
)
def test_a_trusted_peer_names_the_right_most_untrusted_address(forwarded: str, client: str) -> None:
    assert seen_by_app("10.0.0.1", {"X-Forwarded-For": forwarded})["client"][0] == client


@pytest.mark.parametrize(("proto", "scheme"), [("https", "https"), ("http, https", "https"), ("gopher", "http")])
def test_a_trusted_peer_sets_the_scheme_to_http_or_https_only(proto: str, scheme: str) -> None:
    assert seen_by_app("10.0.0.1", {"X-Forwarded-Proto": proto})["scheme"] == scheme
