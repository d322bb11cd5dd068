"""The console's AI memory page in headless Chromium: list a namespace's memories, read one's turns, erase it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.e2e.test_agent_memory import REMEMBERING
from tests.fakes.openai_wire import OpenAIWire, Reply

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"console.mem{uuid.uuid4().hex[:8]}"
#: Markup in a remembered turn must show as text, never run.
ANSWER = '<img src=x onerror="window.pwned=1"> Hello Ann'


def _login(page: Any) -> None:
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))


def test_a_remembered_conversation_is_read_and_erased_from_the_console(
    new_page: Callable[[], Any], console_stack: ConsoleStack, openai_wire: OpenAIWire
) -> None:
    console_stack.deploy(REMEMBERING.replace("{ns}", NS))
    question = f"console-memory: my name is Ann ({uuid.uuid4().hex})"
    openai_wire.script(question, Reply.text(ANSWER))
    started = console_stack.admin.post(
        f"/executions/{NS}/remembering", files={"question": (None, question), "who": (None, "ann")}
    ).json()
    assert console_stack.wait_for_state(started["id"], timeout_s=60)["state"]["current"] == "SUCCESS"
    memory_path = f"/namespaces/{NS}/ai/memory/ann"
    version = console_stack.admin.get(memory_path).json()["version"]

    page = new_page()
    _login(page)
    page.goto("/ui/ai-memory")
    page.wait_for_selector("header a[data-nav=ai-memory].active")
    page.fill("#memory-namespace", NS)
    page.click("#memory-form button[type=submit]")
    row = page.locator("#memories tr[data-memory=ann]")
    row.wait_for()
    assert row.locator("td").nth(1).inner_text() == "2"  # two messages: the prompt and the answer

    # An unknown or invalid memory id: the API's message, in an error box.
    page.fill("#memory-id", "nobody")
    page.click("#memory-form button[type=submit]")
    page.wait_for_selector("#memory-shown .error-box")
    assert "nobody" in page.inner_text("#memory-shown .error-box")
    page.fill("#memory-id", "x" * 600)
    page.click("#memory-form button[type=submit]")
    page.wait_for_selector("#memory-shown .error-box:has-text('memoryId')")

    row.locator("button", has_text="Show").click()
    page.wait_for_selector("#memory[data-memory=ann]")
    cells = page.locator("#memory-messages tbody tr")
    assert cells.count() == 2
    assert cells.nth(0).locator("td").nth(0).inner_text() == "user"
    assert cells.nth(0).locator("td").nth(1).inner_text() == question
    assert cells.nth(1).locator("td").nth(1).inner_text() == ANSWER  # the markup as text
    assert page.locator("#memory img").count() == 0 and page.evaluate("window.pwned") is None
    assert f"version {version}" in page.inner_text("#memory-version")
    assert page.url.endswith(f"/ui/ai-memory?namespace={NS}&memoryId=ann")

    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#erase-memory")
    assert asked and "ann" in asked[0]
    assert console_stack.admin.get(memory_path).status_code == 200  # dismissed: nothing erased
    assert page.locator("#erase-memory").is_enabled()

    held: list[Any] = []  # the DELETE, held until the button is seen disabled
    page.route(
        re.compile(r".*/ai/memory/ann$"),
        lambda route: held.append(route) if route.request.method == "DELETE" else route.continue_(),
    )
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#erase-memory")
    page.wait_for_selector("#erase-memory[disabled]")
    assert "Erasing" in page.inner_text("#memory-status")
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("#memory-erased")
    assert "2 row(s)" in page.inner_text("#memory-erased")
    page.wait_for_selector("#no-memories")
    assert page.locator("#memory").count() == 0
    assert console_stack.admin.get(memory_path).status_code == 404
