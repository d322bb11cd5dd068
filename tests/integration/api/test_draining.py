"""Requests that wait (`wait=true`, follow streams) end when the server starts shutting down or the client leaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from orchestrator import store
from orchestrator.cli.embedded import free_port
from orchestrator.draining import draining
from orchestrator.settings import load_settings
from orchestrator.store.tables import ExecutionRow
from tests.integration.api.conftest import AppFactory, flow_source

E = "/api/v1/main/executions"


@pytest.fixture
def client(make_client: AppFactory) -> Iterator[TestClient]:
    """No worker and no local drive here: an execution never ends, so only draining can end a wait."""
    client = make_client(wait_timeout_s=60, local_drive_max_runs=0)
    yaml = {"Content-Type": "application/x-yaml"}
    response = client.post("/api/v1/main/flows", content=flow_source("a"), headers=yaml)
    assert response.status_code == 200, response.text
    yield client
    draining.clear()  # set once in a process's life in production; tests share the process


def test_wait_answers_with_the_execution_as_it_is_when_draining_begins(client: TestClient) -> None:
    timer = threading.Timer(0.5, draining.set)
    started = time.monotonic()
    timer.start()
    try:
        response = client.post(f"{E}/a/hello", params={"wait": "true"})
    finally:
        timer.cancel()

    assert response.status_code == 200, response.text
    assert response.json()["state"]["current"] in ("CREATED", "RUNNING")
    assert time.monotonic() - started < 10


def test_a_follow_stream_closes_when_draining_begins(client: TestClient) -> None:
    execution_id = client.post(f"{E}/a/hello").json()["id"]
    timer = threading.Timer(0.5, draining.set)
    started = time.monotonic()
    timer.start()
    try:
        with client.stream("GET", f"{E}/{execution_id}/follow") as stream:
            body = "".join(stream.iter_text())
    finally:
        timer.cancel()

    assert body.startswith("id: start")
    assert time.monotonic() - started < 10


def test_wait_stops_polling_when_the_client_leaves(
    database_url: str, api_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[float] = []
    real_get = store.get_execution

    def counted(session: Session, execution_id: str) -> ExecutionRow | None:
        polls.append(time.monotonic())
        return real_get(session, execution_id)

    settings = load_settings(
        database_url=database_url, broker_url=api_redis_url, wait_timeout_s=60, local_drive_max_runs=0
    )
    # A real server: only a real connection tells the app that its client has gone.
    server = uvicorn.Server(uvicorn.Config(create_app(settings, sweeper=False), port=free_port(), log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.config.port}/api/v1/main"
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yaml = {"Content-Type": "application/x-yaml"}
        assert httpx.post(f"{base}/flows", content=flow_source("a"), headers=yaml).status_code == 200
        monkeypatch.setattr(store, "get_execution", counted)  # the module the route reads through

        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{base}/executions/a/hello", params={"wait": "true"}, timeout=1)
        time.sleep(0.5)  # the server notices the closed connection at its next poll
        settled = len(polls)
        time.sleep(1)

        assert settled > 0
        assert len(polls) == settled, "the wait went on polling for a client that had left"
    finally:
        server.should_exit = True
        thread.join(10)
