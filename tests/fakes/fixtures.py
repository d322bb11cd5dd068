"""Session-scoped fake servers, shared by every test (each test scripts and reads its own traffic)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.fakes import jira as jira_fake
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


def secret_env(openai: OpenAIWire, jira: JiraServer) -> dict[str, str]:
    """`SECRET_*` variables (base64, Kestra's convention) that point flows' secrets at the fake servers."""
    values = {
        "OPENAI_API_KEY": openai.api_key,
        "OPENAI_BASE_URL": openai.base_url,
        "JIRA_URL": jira.url,
        "JIRA_USERNAME": jira_fake.USERNAME,
        "JIRA_API_TOKEN": jira_fake.API_TOKEN,
    }
    return {f"SECRET_{name}": base64.b64encode(value.encode()).decode() for name, value in values.items()}
