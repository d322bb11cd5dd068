"""Requests that wait (`wait=true`, follow streams) end as soon as the server starts shutting down."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from orchestrator.draining import draining
from tests.integration.api.conftest import AppFactory, flow_source

E = "/api/v1/main/executions"


@pytest.fixture
def client(make_client: AppFactory) -> Iterator[TestClient]:
    """No worker here: an execution never ends, so only draining can end a wait."""
    client = make_client(wait_timeout_s=60)
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
