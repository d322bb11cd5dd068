"""The flow editor in Chromium: CodeMirror with completion from the task catalogue, the validator's errors
at their line and column, the topology drawn beside the code as it is typed, and a phone-sized page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.e2e.console.editor_driver import CONTENT, caret_line, completions, scroll_top, set_source, source

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]

NS = f"editor.n{uuid.uuid4().hex[:8]}"


def _login(page: Any) -> None:
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))


@pytest.fixture
def page(new_page: Callable[[], Any]) -> Iterator[Any]:
    """A signed-in page; the editor must work under the page's CSP (its stylesheet admitted by nonce only)."""
    opened = new_page()
    refused: list[str] = []
    opened.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    _login(opened)
    yield opened
    assert refused == []


def _type_at_end(page: Any, text: str) -> None:
    page.click(CONTENT)
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def test_completion_offers_task_types_then_the_chosen_types_properties(page: Any, console_stack: ConsoleStack) -> None:
    page.goto("/ui/flows/new")
    set_source(page, f"id: typed\nnamespace: {NS}\ntasks:\n  - id: say\n    type: ")

    _type_at_end(page, "io.kestra.plugin.core.log.")
    offered = completions(page)
    assert "io.kestra.plugin.core.log.Log" in offered and "io.kestra.plugin.core.log.Fetch" in offered
    assert not [o for o in offered if not o.startswith("io.kestra.plugin.core.log.")]  # filtered by what was typed
    page.screenshot(path=str(console_stack.screenshots / "editor-completion.png"))
    page.locator(".cm-tooltip-autocomplete li", has_text="io.kestra.plugin.core.log.Log").click()

    # On the next line, the Log type's own properties (required ones first), not those already there.
    page.keyboard.press("Enter")
    page.keyboard.type("mes")
    offered = completions(page)
    assert offered[0] == "message"
    page.screenshot(path=str(console_stack.screenshots / "editor-completion-properties.png"))
    page.keyboard.press("Enter")  # accepts: `message: `
    page.keyboard.type("hello from the editor")
    assert source(page).endswith("    type: io.kestra.plugin.core.log.Log\n    message: hello from the editor")
    page.wait_for_selector("#valid")

    page.keyboard.press("Enter")
    page.keyboard.type("le")
    assert "level" in completions(page)
    page.keyboard.press("Escape")
    # A new first line: the flow's own keys, less those it has (`id`, `namespace`, `tasks`).
    page.keyboard.press("Control+Home")
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowUp")
    page.keyboard.type("i")
    offered = completions(page)
    assert "inputs" in offered and "id" not in offered

    # Under `triggers:`, trigger types; under a plugin default's `values:`, the properties of its `type`.
    page.keyboard.press("Escape")
    head = f"id: d\nnamespace: {NS}\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    set_source(page, head + "triggers:\n  - id: every\n    type: ")
    _type_at_end(page, "io.kestra.plugin.core.")
    offered = completions(page)
    assert "io.kestra.plugin.core.trigger.Schedule" in offered and "io.kestra.plugin.core.log.Log" not in offered
    page.keyboard.press("Escape")
    set_source(page, head + "pluginDefaults:\n  - type: io.kestra.plugin.core.log.Log\n    values:\n      ")
    _type_at_end(page, "le")
    assert completions(page)[0] == "level"


def test_an_invalid_flow_is_marked_at_its_line_and_column_and_its_link_goes_there(
    page: Any, console_stack: ConsoleStack
) -> None:
    page.goto("/ui/flows/new")
    task = "  - id: log{i}\n    type: io.kestra.plugin.core.log.Log\n    message: m{i}\n"
    padding = "".join(task.format(i=i) for i in range(20))
    broken = f"id: long\nnamespace: {NS}\ntasks:\n{padding}  - id: broken\n    type: io.kestra.plugin.core.log.Lgo\n"
    set_source(page, broken)

    page.wait_for_selector("#problems a.goto")
    assert page.get_attribute("#problems .problem", "data-line") == "65"
    assert "did you mean io.kestra.plugin.core.log.Log" in page.inner_text("#problems .problem")
    page.click("#problems a.goto")
    assert caret_line(page) == 65
    assert scroll_top(page) > 0  # scrolled down to it
    # The line is tinted and named, the gutter has an error mark beside it, the bad value is underlined.
    line = page.locator(".cm-line.cm-errorLine[data-error-line='65']")
    assert line.is_visible() and "io.kestra.plugin.core.log.Lgo" in line.inner_text()
    underline = page.locator(".cm-errorLine .cm-lintRange-error")
    assert underline.inner_text() == "io.kestra.plugin.core.log.Lgo"  # from its column (`type:` is not marked)
    marker = page.locator(".cm-gutter-lint .cm-lint-marker-error")
    assert marker.count() == 1
    line_box, marker_box = line.bounding_box(), marker.bounding_box()
    assert abs((line_box["y"] + line_box["height"] / 2) - (marker_box["y"] + marker_box["height"] / 2)) < 6
    page.hover(".cm-errorLine .cm-lintRange-error")  # its message, with the closest type as a one-click fix
    page.wait_for_selector(".cm-tooltip-lint >> text=unknown task type")
    page.screenshot(path=str(console_stack.screenshots / "editor-error.png"))
    page.click(".cm-tooltip-lint button.cm-diagnosticAction >> text=Use io.kestra.plugin.core.log.Log")
    assert source(page).splitlines()[64] == "    type: io.kestra.plugin.core.log.Log"
    page.wait_for_selector("#problems .problem >> text=missing required property 'message'")  # the next problem

    # Fixed in the editor, the marks go away.
    set_source(page, broken.replace("log.Lgo", "log.Log\n    message: fixed"))
    page.wait_for_selector("#valid")
    assert page.locator(".cm-errorLine").count() == 0 and page.locator(".cm-lint-marker-error").count() == 0


def test_the_topology_follows_the_code_and_a_node_shows_its_task(page: Any, console_stack: ConsoleStack) -> None:
    page.goto("/ui/flows/new")
    flow = f"""id: drawn
namespace: {NS}
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ true }}}}"
    then:
      - id: inner
        type: io.kestra.plugin.core.debug.Return
        format: x
"""
    set_source(page, flow)
    page.wait_for_selector("#flow-topology .node[data-task=branch].cluster .node[data-task=inner]")
    assert page.locator("#flow-topology .node[data-task=first]").count() == 1

    _type_at_end(page, "  - id: last\n")
    page.wait_for_selector("#flow-topology .node[data-task=last]")
    # Half-typed YAML that does not parse keeps the last drawing, marked out of date.
    _type_at_end(page, "x: y: z")
    page.wait_for_selector("#editor-topology.stale")
    assert page.locator("#flow-topology .node[data-task=last]").count() == 1

    page.click("#flow-topology .node[data-task=inner] .node-head")
    assert caret_line(page) == 11


def test_the_editor_page_fits_a_phone(page: Any, console_stack: ConsoleStack) -> None:
    long_line = "x" * 300
    console_stack.deploy(
        f"id: wide\nnamespace: {NS}\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
        f"    message: {long_line}\n"
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/ui/flows/{NS}/wide/editor")
    page.wait_for_selector("#valid")
    page.wait_for_selector("#flow-topology .node[data-task=say]")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)"
        ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
    )
    # The long line scrolls inside the editor, which is as wide as the screen allows.
    editor = page.locator("#flow-source").bounding_box()
    assert editor["x"] >= 0 and editor["x"] + editor["width"] <= 390
    assert page.evaluate("document.querySelector('#flow-source .cm-scroller').scrollWidth") > editor["width"]
    page.screenshot(path=str(console_stack.screenshots / "phone-editor-code.png"), full_page=True)
