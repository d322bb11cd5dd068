"""Request metrics: counted under the route template (never the concrete path), unmatched paths under one label."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.metrics import UNMATCHED, RequestMetrics, metrics_router
from orchestrator.observability.metrics import exposition


def app() -> FastAPI:
    application = FastAPI()
    application.add_middleware(RequestMetrics)
    application.include_router(metrics_router([]))

    @application.get("/things/{thing_id}")
    def read_thing(thing_id: str) -> dict[str, str]:
        if thing_id == "boom":
            raise RuntimeError("a bug")
        return {"id": thing_id}

    return application


def count(route: str, status: str) -> float:
    line = f'chorus_http_requests_total{{method="GET",route="{route}",status="{status}"}} '
    for text in exposition().decode().splitlines():
        if text.startswith(line):
            return float(text.split()[-1])
    return 0.0


def test_requests_are_counted_under_their_route_template() -> None:
    before = count("/things/{thing_id}", "200")
    with TestClient(app()) as client:
        client.get("/things/a1")
        client.get("/things/b2")

    assert count("/things/{thing_id}", "200") == before + 2
    assert "/things/a1" not in exposition().decode()


def test_unmatched_paths_share_one_label() -> None:
    before = count(UNMATCHED, "404")
    with TestClient(app()) as client:
        client.get("/no/such/path-123")

    assert count(UNMATCHED, "404") == before + 1


def test_a_request_that_raises_counts_as_a_500() -> None:
    before = count("/things/{thing_id}", "500")
    with TestClient(app(), raise_server_exceptions=False) as client:
        client.get("/things/boom")

    assert count("/things/{thing_id}", "500") == before + 1


def test_the_metrics_endpoint_serves_the_text_format() -> None:
    with TestClient(app()) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "chorus_http_request_duration_seconds_bucket" in response.text
