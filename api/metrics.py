"""Request metrics by route template (a pure ASGI middleware) and the `/metrics` endpoint."""

from __future__ import annotations

import time
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from prometheus_client import generate_latest
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.observability.metrics import CONTENT_TYPE, exposition, exposition_registry, metrics
from orchestrator.observability.metrics_merge import merged_registry

UNMATCHED = "<unmatched>"  #: route label of requests no route matched (keeps the label bounded)
#: The method label takes only these; any other token a client sends (HTTP allows any) is counted as OTHER,
#: or an unauthenticated caller could grow /metrics by one series per made-up method.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


class RequestMetrics:
    """Counts and times every HTTP request under its route template, never its concrete path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._m = metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router writes the matched route into the shared scope.
            route: BaseRoute | None = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
            self._m.http_requests.labels(method, template, str(status)).inc()
            self._m.http_request_duration.labels(method, template).observe(time.perf_counter() - started)


def metrics_router(collectors: Sequence[Collector], merge_urls: Sequence[str] = ()) -> APIRouter:
    """`GET /metrics`: this process's metrics plus `collectors` (queue depth), and those served at `merge_urls`."""
    router = APIRouter()
    sources = [("workers" if len(merge_urls) == 1 else f"workers-{i}", url) for i, url in enumerate(merge_urls)]

    @router.get("/metrics", include_in_schema=False)
    def serve_metrics(request: Request) -> Response:
        if not sources:
            return Response(exposition(collectors), media_type=CONTENT_TYPE)
        body = generate_latest(merged_registry(exposition_registry(collectors), sources))
        return Response(body, media_type=CONTENT_TYPE)

    return router
