"""The console's "Replay from the ledger" in headless Chromium: the seed flow replayed with its provider stopped.

The seed flow (examples/customer-feedback-analysis.deploy.yaml) is deployed with its tasks unchanged into a
namespace of this module, its ChatCompletion defaults pointed at an OpenAI-wire server of this test's own, which
is stopped before the click: the replay's page then shows the comparison with the original, all the same.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.e2e.test_ledger_replay import FLOW_ID, WEBHOOK_KEY, StoppableWire, seed_source
from tests.fakes.openai_wire import OpenAIWire, Reply

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"console.ledger{uuid.uuid4().hex[:8]}"


@pytest.fixture
def own_wire() -> Iterator[OpenAIWire]:
    with StoppableWire() as server:
        yield server


def _login(page: Any) -> None:
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))


def test_replay_from_the_ledger_button_shows_identical_outputs_with_the_provider_stopped(
    new_page: Callable[[], Any], console_stack: ConsoleStack, own_wire: OpenAIWire
) -> None:
    console_stack.deploy(seed_source(NS, own_wire))
    feedback = f"Lovely service ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("POSITIVE"))
    started = console_stack.admin.post(
        f"/executions/webhook/{NS}/{FLOW_ID}/{WEBHOOK_KEY}", json={"feedback": feedback}
    ).json()
    original = console_stack.wait_for_state(started["id"], timeout_s=60)
    assert original["state"]["current"] == "SUCCESS", original
    own_wire.stop()

    page = new_page()
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    _login(page)
    page.goto(f"/ui/executions/{original['id']}")
    page.click("#replay-ledger")

    page.wait_for_url(lambda url: original["id"] not in url)
    assert len(asked) == 1 and "no provider is called" in asked[0]
    summary = page.locator("#replay-diff #diff-summary[data-identical=true]")
    summary.wait_for(timeout=60_000)
    assert "0 provider call(s) here, 1 in the original" in summary.inner_text()
    assert page.locator("#diff-tasks tr[data-same=true]").count() == 2
    assert page.locator("#diff-tasks tr[data-same=false]").count() == 0
    replay_id = page.inner_text("#execution-id")
    assert page.inner_text("#replay-of") == original["id"]
    assert console_stack.admin.get(f"/executions/{replay_id}").json()["state"]["current"] == "SUCCESS"
    assert len(own_wire.received()) == 1  # the original's request only
    page.screenshot(path=str(console_stack.screenshots / "ledger-replay-diff.png"), full_page=True)


def test_live_from_here_replays_with_that_task_calling_the_provider(
    new_page: Callable[[], Any], console_stack: ConsoleStack, own_wire: OpenAIWire
) -> None:
    if console_stack.admin.get(f"/flows/{NS}/{FLOW_ID}").status_code == 404:
        console_stack.deploy(seed_source(NS, own_wire))
    else:  # the module's other test deployed it against its own (stopped) server: point it at this one
        updated = console_stack.admin.put(
            f"/flows/{NS}/{FLOW_ID}", content=seed_source(NS, own_wire), headers={"Content-Type": "application/x-yaml"}
        )
        assert updated.status_code == 200, updated.text
    feedback = f"Meh ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("NEUTRAL"), Reply.text("NEGATIVE"))
    started = console_stack.admin.post(
        f"/executions/webhook/{NS}/{FLOW_ID}/{WEBHOOK_KEY}", json={"feedback": feedback}
    ).json()
    original = console_stack.wait_for_state(started["id"], timeout_s=60)
    assert original["state"]["current"] == "SUCCESS", original

    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    _login(page)
    page.goto(f"/ui/executions/{original['id']}")
    page.locator("#task-runs tr[data-task=analyze-sentiment] button.replay-live-from").click()

    page.wait_for_url(lambda url: original["id"] not in url)
    page.locator("#replay-diff #diff-summary[data-identical=false]").wait_for(timeout=60_000)
    changed = page.locator("#diff-tasks tr[data-path=analyze-sentiment][data-same=false]")
    assert "NEUTRAL" in changed.inner_text() and "NEGATIVE" in changed.inner_text()
    assert len(own_wire.received()) == 2
