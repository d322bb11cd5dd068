"""The execution page and the new-flow page in Chromium: task runs up close, filtered logs, blueprints that validate."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.e2e.console.editor_driver import source as editor_source

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"execpage.n{uuid.uuid4().hex[:8]}"

LOOP = f"""id: loop
namespace: {NS}
tasks:
  - id: start
    type: io.kestra.plugin.core.log.Log
    message: starting the loop
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "item {{{{ taskrun.value }}}}"
  - id: result
    type: io.kestra.plugin.core.debug.Return
    format: "all said"
"""


def test_a_task_run_opens_from_the_gantt_and_the_topology_and_logs_filter_by_task_and_text(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    console_stack.deploy(LOOP)
    started = console_stack.admin.post(f"/executions/{NS}/loop").json()
    done = console_stack.wait_for_state(started["id"])
    assert done["state"]["current"] == "SUCCESS"
    page = new_page()
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))
    page.goto(f"/ui/executions/{done['id']}")

    result = next(r for r in done["taskRunList"] if r["taskId"] == "result")
    page.click("#tab-gantt")
    page.click(f"#gantt .gantt-row[data-task-run='{result['id']}'] .gantt-track")
    detail = page.locator("#task-run-detail")
    detail.locator("text=Task run result").wait_for()
    assert "all said" in detail.inner_text() and detail.locator("table.attempts tr.picked").count() == 1

    page.click("#tab-topology")
    page.click("#topology .node[data-task=say] .node-head")
    detail.locator("text=Task say · 2 runs").wait_for()
    detail.locator(".task-run-logs >> text=item b").wait_for()

    page.click("#tab-logs")
    page.select_option("#log-task", "say")
    page.locator("#logs tr").filter(has_text="starting the loop").first.wait_for(state="detached")
    page.wait_for_selector("#logs tr >> text=item a")
    tasks = page.locator("#logs tr td:nth-child(3)").all_inner_texts()
    assert {t.split(" ")[0] for t in tasks} == {"say"}  # the other tasks' lines are filtered out
    assert {"say [a]", "say [b]"} <= set(tasks)  # which loop item a line came from
    page.fill("#log-search", "item b")
    page.locator("#logs tr").filter(has_text="item a").first.wait_for(state="detached")
    assert all("item b" in t for t in page.locator("#logs tr td.msg").all_inner_texts())

    href = page.get_attribute("#log-download", "href") or ""
    assert "taskId=say" in href
    text = page.request.get(href).text()
    assert "item a" in text and "item b" in text and "starting the loop" not in text


def test_every_blueprint_starts_a_valid_flow(new_page: Callable[[], Any], console_stack: ConsoleStack) -> None:
    page = new_page()
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))
    page.goto("/ui/flows/new")
    page.wait_for_selector("#blueprint option[value=hello]", state="attached")  # rendered after the page's reads
    blueprints = page.locator("#blueprint option").evaluate_all("os => os.map(o => o.value).filter(Boolean)")
    assert "hello" in blueprints and len(blueprints) >= 4

    sources = set()
    for blueprint in blueprints:
        page.select_option("#blueprint", blueprint)
        source = editor_source(page)
        sources.add(source)
        verdict = console_stack.admin.post(
            "/flows/validate", content=source, headers={"Content-Type": "application/x-yaml"}
        ).json()[0]
        assert not verdict.get("errors") and not verdict.get("constraints"), (blueprint, verdict)
    assert len(sources) == len(blueprints)
    page.locator("#valid").wait_for()  # the page's own check of the last one agrees
