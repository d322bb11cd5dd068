"""Who the client is behind a reverse proxy: X-Forwarded-For/-Proto believed only from CHORUS_TRUSTED_PROXIES.

The client address keys the login lockout and names the caller in the audit trail, so a header anyone can
send must not set it. uvicorn's own proxy handling trusts loopback by default (a local process could claim
any address); `chorus server` and `chorus local` turn it off and this middleware decides instead, from the
configured networks only (none by default).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Rewrites the scope's client and scheme from forwarding headers sent by a trusted proxy."""

    def __init__(self, app: ASGIApp, networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.networks:
            peer = scope.get("client")
            if peer and self._trusted(peer[0]):
                self._rewrite(scope)
        await self.app(scope, receive, send)

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def _rewrite(self, scope: Scope) -> None:
        forwarded_for: list[str] = []
        proto = None
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                forwarded_for.extend(part.strip() for part in value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        # Each proxy appends the address it received from: walking from the right, the first address that is
        # not a trusted proxy is the client; anything left of it was written by the client and is not believed.
        for candidate in reversed([part for part in forwarded_for if part]):
            if not self._trusted(candidate):
                if _is_address(candidate):
                    scope["client"] = (candidate, 0)
                break
        if proto in ("http", "https"):
            scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
