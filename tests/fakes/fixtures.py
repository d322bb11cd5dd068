"""Session-scoped fake servers, shared by every test (each test scripts and reads its own traffic)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire
from tests.fakes.webhook import WebhookReceiver


@pytest.fixture(scope="session")
def openai_wire() -> Iterator[OpenAIWire]:
    with OpenAIWire() as server:
        yield server


@pytest.fixture(scope="session")
def jira_server() -> Iterator[JiraServer]:
    with JiraServer() as server:
        yield server


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server
