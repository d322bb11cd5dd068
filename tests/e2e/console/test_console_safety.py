"""The console's second pass in Chromium: safe actions, kept edits, a phone-sized page, views that stay current."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Stack
from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.e2e.console.editor_driver import CONTENT, caret_line, scroll_top, set_source
from tests.e2e.console.editor_driver import source as editor_source

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"safety.n{uuid.uuid4().hex[:8]}"

QUICK = f"""id: quick
namespace: {NS}
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "first done"
  - id: second
    type: io.kestra.plugin.core.debug.Return
    format: "second done"
"""

FAILING = f"""id: failing
namespace: {NS}
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: "before"
  - id: refuse
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "refused"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "after"
"""

GATE = f"""id: gate
namespace: {NS}
tasks:
  - id: plan
    type: io.kestra.plugin.core.log.Log
    message: planning
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""


def _login(page: Any) -> None:
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))


def _run(stack: ConsoleStack, flow_id: str, source: str, states: set[str] | None = None) -> dict[str, Any]:
    if stack.admin.get(f"/flows/{NS}/{flow_id}").status_code == 404:
        stack.deploy(source)
    started = stack.admin.post(f"/executions/{NS}/{flow_id}", files={"who": (None, "Ada")}).json()
    return stack.wait_for_state(started["id"], states)


def _replays(stack: ConsoleStack, original_id: str) -> list[str]:
    found = stack.admin.get("/executions/search", params={"namespace": NS, "size": 100}).json()
    return [e["id"] for e in found["results"] if e.get("parentId") == original_id]


def _answering(asked: list[str], answer: dict[str, bool]) -> Callable[[Any], None]:
    """A dialog handler that records what the page asked and accepts or dismisses as `answer` says now."""

    def handle(dialog: Any) -> None:
        asked.append(dialog.message)
        if answer["accept"]:
            dialog.accept()
        else:
            dialog.dismiss()

    return handle


def _no_overflow(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


#: What sticks out past the right edge (outermost first), to name the culprit when a page overflows.
_WIDE = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""


def test_a_double_click_on_replay_asks_once_and_makes_one_execution_linked_to_its_original(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    original = _run(console_stack, "quick", QUICK)
    page = new_page()
    asked: list[str] = []
    page.on("dialog", _answering(asked, {"accept": True}))
    _login(page)
    page.goto(f"/ui/executions/{original['id']}")

    page.dblclick("#replay")

    page.wait_for_url(lambda url: original["id"] not in url)
    time.sleep(1)  # time enough for a second execution, were one made
    assert len(_replays(console_stack, original["id"])) == 1
    assert len(asked) == 1 and "new execution" in asked[0]
    assert page.inner_text("#replay-of") == original["id"]
    page.goto(f"/ui/executions/{original['id']}")
    page.wait_for_selector("#replays a.replayed-as")
    assert page.locator("#replays a.replayed-as").count() == 1


def test_set_state_is_offered_only_on_ended_task_runs_and_a_paused_one_can_be_resumed(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    paused = _run(console_stack, "gate", GATE, {"PAUSED"})
    failed = _run(console_stack, "failing", FAILING)
    page = new_page()
    asked: list[str] = []
    page.on("dialog", _answering(asked, {"accept": True}))
    _login(page)
    try:
        page.goto(f"/ui/executions/{paused['id']}")
        page.wait_for_selector("#task-runs tr[data-task=wait]")
        assert page.locator("#task-runs tr[data-task=wait] .set-state").count() == 0  # the API would answer 409
        assert page.locator("#task-runs tr[data-task=plan] .set-state").count() == 1
        assert page.locator("#task-runs .replay-from").count() == 0  # replay applies to ended executions
        page.click("#resume")
        assert console_stack.wait_for_state(paused["id"])["state"]["current"] == "SUCCESS"
        assert "paused task goes on" in asked[-1]
    finally:
        console_stack.admin.delete(f"/executions/{paused['id']}/actions/kill")

    page.goto(f"/ui/executions/{failed['id']}")
    row = page.locator("#task-runs tr[data-task=refuse]")
    assert row.locator(".set-state").input_value() == ""  # no default
    assert row.locator("button.change-state").is_disabled()
    options = row.locator(".set-state option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["", "SUCCESS", "WARNING", "KILLED"]  # never its current state
    row.locator(".set-state").select_option("SUCCESS")
    row.locator("button.change-state").click()
    console_stack.wait_for_state(failed["id"], {"SUCCESS"})
    assert asked and "from FAILED to SUCCESS" in asked[-1]


def test_edits_are_kept_saved_with_ctrl_s_and_an_old_revision_restored(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    flow_id = f"edit{uuid.uuid4().hex[:6]}"
    first = QUICK.replace("id: quick", f"id: {flow_id}")
    console_stack.deploy(first)
    page = new_page()
    asked: list[str] = []
    answer = {"accept": False}
    page.on("dialog", _answering(asked, answer))
    _login(page)
    page.goto(f"/ui/flows/{NS}/{flow_id}/editor")
    page.wait_for_selector("#valid")
    changed = first.replace("first done", "first changed")
    set_source(page, changed)
    page.wait_for_selector("#unsaved")

    page.click("header a[data-nav=executions]")  # leaving asks; dismissed, the edit stays
    assert asked and "unsaved changes" in asked[-1]
    assert page.url.endswith("/editor") and editor_source(page) == changed

    page.press(CONTENT, "Control+s")
    page.wait_for_selector("#saved >> text=Saved revision 2")
    page.wait_for_timeout(500)
    assert page.inner_text("#saved") == "Saved revision 2"  # not wiped by the re-render
    assert console_stack.admin.get(f"/flows/{NS}/{flow_id}").json()["revision"] == 2

    answer["accept"] = True
    page.click("#tab-revisions")
    page.select_option("#rev-left", "1")
    page.click("#restore")
    page.wait_for_selector("#saved >> text=Restored revision 1 as revision 3")
    assert "first done" in editor_source(page)
    assert "first done" in console_stack.admin.get(f"/flows/{NS}/{flow_id}?source=true").json()["source"]


def test_an_error_link_scrolls_to_its_line_and_marks_its_column(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    page = new_page()
    _login(page)
    page.goto("/ui/flows/new")
    task = "  - id: log{i}\n    type: io.kestra.plugin.core.log.Log\n    message: m{i}\n"
    padding = "".join(task.format(i=i) for i in range(20))
    text = f"id: long\nnamespace: {NS}\ntasks:\n{padding}  - id: broken\n    type: io.kestra.plugin.core.log.Lgo\n"
    set_source(page, text)
    page.wait_for_selector("#problems a.goto")
    line = int(page.get_attribute("#problems .problem", "data-line") or 0)
    assert line == 65

    page.click("#problems a.goto")

    assert scroll_top(page) > 0
    assert caret_line(page) == line
    # The column mark: the bad value underlined on its (visible) line, from its column.
    mark = page.locator(f".cm-errorLine[data-error-line='{line}'] .cm-lintRange-error")
    assert mark.is_visible() and mark.inner_text() == "io.kestra.plugin.core.log.Lgo"


def test_views_stay_current_and_say_who_is_signed_in(new_page: Callable[[], Any], console_stack: ConsoleStack) -> None:
    page = new_page()
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-status .error-box")
    assert page.inner_text("#login-status").count("wrong username or password") == 1
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))
    assert page.inner_text("#whoami") == ADMIN[0]
    assert page.locator("#auth-off").is_hidden()

    page.goto(f"/ui/executions/{uuid.uuid4().hex}")
    page.wait_for_selector(".error-box")
    message = page.inner_text(".error-box").strip()
    assert message and page.inner_text("#app").count(message) == 1  # said once, not again in a list

    # The list shows an execution started elsewhere without a reload.
    page.goto(f"/ui/executions?namespace={NS}")
    page.wait_for_selector("#execution-list")
    done = _run(console_stack, "quick", QUICK)
    page.wait_for_selector(f"#execution-list tr[data-execution='{done['id']}']", timeout=15_000)

    page.goto(f"/ui/flows?namespace={NS}")
    page.wait_for_selector(f"tr[data-flow='{NS}.quick'] .last-run .state")

    page.goto(f"/ui/executions/{done['id']}")
    assert "Ada" in page.inner_text("#inputs")  # on the overview
    page.click("#tab-outputs")
    page.wait_for_selector("#outputs pre")
    assert "second done" in page.inner_text("#outputs") and "Ada" not in page.inner_text("#outputs")

    # Approving from the inbox updates the header's badge at once.
    paused = _run(console_stack, "gate", GATE, {"PAUSED"})
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{paused['id']}']")
    card.wait_for()
    expect(page.locator("#inbox-count")).to_have_text(re.compile(r"^[1-9]"))
    before = int(page.inner_text("#inbox-count"))
    card.locator("button.approve").click()
    expect(page.locator("#inbox-count")).to_have_text(str(before - 1))
    console_stack.wait_for_state(paused["id"])


def test_a_phone_sized_page_never_scrolls_sideways(new_page: Callable[[], Any], console_stack: ConsoleStack) -> None:
    done = _run(console_stack, "quick", QUICK)
    page = new_page()
    _login(page)
    timings: dict[str, Any] = {}
    pages = {
        "flows": "/ui/flows",
        "executions": f"/ui/executions?namespace={NS}",
        "execution": f"/ui/executions/{done['id']}",
        "editor": f"/ui/flows/{NS}/quick/editor",
        "approvals": "/ui/approvals",
        "ai-usage": "/ui/ai-usage",
    }
    # Desktop first (load times only), then the phone, where nothing may stick out sideways.
    for device, size in (("desktop", (1360, 860)), ("phone", (390, 844))):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        for name, path in pages.items():
            requests: list[Any] = []

            def count(request: Any, requests: list[Any] = requests) -> None:
                requests.append(request)

            page.on("request", count)
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.remove_listener("request", count)
            timings[f"{device} {name}"] = {
                "document_ms": page.evaluate("Math.round(performance.getEntriesByType('navigation')[0].duration)"),
                # until the page's last request (scripts, session, data) had its answer
                "data_ms": page.evaluate(
                    "Math.round(Math.max(0, ...performance.getEntriesByType('resource').map(e => e.responseEnd)))"
                ),
                "requests": len(requests),
            }
            if device == "desktop":
                continue
            assert _no_overflow(page), (name, page.evaluate(_WIDE))
            if name == "execution":
                page.click("#tab-gantt")
                assert page.evaluate("getComputedStyle(document.querySelector('.gantt-label')).width") != "260px"
            page.screenshot(path=str(console_stack.screenshots / f"phone-{name}.png"))
    (console_stack.screenshots / "timings.json").write_text(json.dumps(timings, indent=1))


def test_with_no_admin_the_page_says_auth_is_off(browser: Any, stack: Stack) -> None:
    context = browser.new_context(base_url=str(stack.api.base_url).split("/api/")[0])
    try:
        page = context.new_page()
        page.goto("/ui/flows")
        page.wait_for_selector("#auth-off")
        assert "every visitor is an admin" in page.inner_text("#auth-off")
        assert "CHORUS_ADMIN_USERNAME" in page.inner_text("#auth-off")
        assert page.inner_text("#whoami") == "everyone (admin)"
    finally:
        context.close()
