"""The execution page's topology shows a task's `compensate` steps as its lane, coloured by how they ran."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.console.conftest import ADMIN, ConsoleStack

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"compensation.n{uuid.uuid4().hex[:8]}"

SAGA = f"""id: saga
namespace: {NS}
tasks:
  - id: book
    type: io.kestra.plugin.core.log.Log
    message: booked
    compensate:
      - id: unbook
        type: io.kestra.plugin.core.log.Log
        message: "undo {{{{ compensation.task }}}}"
  - id: charge
    type: io.kestra.plugin.core.execution.Fail
    compensate:
      - id: refund
        type: io.kestra.plugin.core.log.Log
        message: never
"""


def test_the_topology_shows_the_undo_steps_that_ran_and_those_that_did_not(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    console_stack.deploy(SAGA)
    started = console_stack.admin.post(f"/executions/{NS}/saga").json()
    done = console_stack.wait_for_state(started["id"])
    assert done["state"]["current"] == "FAILED"
    page = new_page()
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))
    page.goto(f"/ui/executions/{done['id']}")

    page.click("#tab-topology")
    book = page.locator("#topology .node[data-task=book]")
    book.locator(".lane-label >> text=compensate").wait_for()
    assert book.locator(".node[data-task=unbook]").get_attribute("data-state") == "SUCCESS"
    charge = page.locator("#topology .node[data-task=charge]")
    assert charge.get_attribute("data-state") == "FAILED"
    assert charge.locator(".node[data-task=refund]").get_attribute("data-state") == "NONE"  # never ran
