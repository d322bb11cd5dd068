"""The pages Kestra users reach for, in Chromium: dashboard, triggers, namespace KV and files, bulk actions."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.console.conftest import ADMIN, ConsoleStack

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"pages.n{uuid.uuid4().hex[:8]}"
OPERATOR = ("pages-operator@chorus.test", "pages-operator-pw-1")
VIEWER = ("pages-viewer@chorus.test", "pages-viewer-pw-1")

QUICK = """id: quick
namespace: {ns}
tasks:
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "done"
"""
FAILING = """id: failing
namespace: {ns}
tasks:
  - id: refuse
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "refused"
"""
SLOW = """id: slow
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT120S
"""
SCHEDULED = """id: scheduled
namespace: {ns}
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "slot {{{{ trigger.date }}}}"
"""


def _login(page: Any, who: tuple[str, str] = ADMIN, landing: str = "/ui/flows") -> None:
    page.goto(landing)
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", who[0])
    page.fill("#password", who[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(landing.split("?")[0]))


def _user(stack: ConsoleStack, who: tuple[str, str], role: str) -> None:
    """Create the user unless an earlier test of the session did (409)."""
    created = stack.admin.post("/users", json={"username": who[0], "password": who[1], "roles": [{"role": role}]})
    assert created.status_code in (200, 409), created.text


def _run(stack: ConsoleStack, ns: str, flow_id: str, source: str, states: set[str] | None = None) -> dict[str, Any]:
    if stack.admin.get(f"/flows/{ns}/{flow_id}").status_code == 404:
        stack.deploy(source.format(ns=ns))
    started = stack.admin.post(f"/executions/{ns}/{flow_id}").json()
    return stack.wait_for_state(started["id"], states)


def _accept_next_dialog(page: Any) -> list[str]:
    """Accept the next confirmation; the list it returns gets the question asked."""
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    return asked


def _shot(page: Any, stack: ConsoleStack, name: str) -> None:
    page.screenshot(path=str(stack.screenshots / f"{name}.png"), full_page=True)


def test_the_dashboard_is_the_landing_page_and_shows_states_over_time_running_and_failed(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    ns = f"{NS}.dash"
    _run(console_stack, ns, "quick", QUICK)
    failed = _run(console_stack, ns, "failing", FAILING)
    sleeping = _run(console_stack, ns, "slow", SLOW, {"RUNNING"})
    page = new_page()
    _login(page, landing="/ui")
    page.wait_for_url(re.compile(r"/ui/dashboard"))
    assert page.locator("header a[data-nav=dashboard].active").count() == 1

    page.goto(f"/ui/dashboard?namespace={ns}&range=PT24H")
    page.wait_for_selector("#state-chart rect.bar")
    totals = {
        el.get_attribute("data-state"): el.inner_text().strip()
        for el in page.query_selector_all("#state-totals .legend-item")
    }
    assert totals == {"SUCCESS": "SUCCESS 1", "FAILED": "FAILED 1", "RUNNING": "RUNNING 1"}, totals
    bars = page.locator("#state-chart rect.bar")
    assert sorted(bars.nth(i).get_attribute("data-state") for i in range(bars.count())) == [
        "FAILED",
        "RUNNING",
        "SUCCESS",
    ]
    assert page.locator("#state-chart g.bucket").count() == 25  # every hour of the last 24, empty ones too
    page.wait_for_selector(f"#running-now tr[data-execution='{sleeping['id']}']")
    page.wait_for_selector(f"#recent-failures tr[data-execution='{failed['id']}']")
    assert page.locator("#recent-failures tbody tr").count() == 1
    _shot(page, console_stack, "dashboard")
    page.click(f"#recent-failures tr[data-execution='{failed['id']}'] a")
    page.wait_for_url(re.compile(f"/ui/executions/{failed['id']}"))
    console_stack.admin.delete(f"/executions/{sleeping['id']}/actions/kill")


def test_a_trigger_is_disabled_enabled_backfilled_paused_cancelled_and_unlocked(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    ns = f"{NS}.trig"
    console_stack.deploy(SCHEDULED.format(ns=ns))
    api = f"/triggers/{ns}/scheduled"
    page = new_page()
    _login(page)
    page.goto(f"/ui/triggers?namespace={ns}")
    row = page.locator(f"tr[data-trigger='{ns}.scheduled.hourly']")
    row.wait_for()
    assert row.get_attribute("data-disabled") == "false"
    assert re.search(r"\d", row.locator(".next-fire").inner_text())  # a date, not a dash

    asked = _accept_next_dialog(page)
    row.locator("button.disable").click()
    page.wait_for_selector(f"tr[data-trigger='{ns}.scheduled.hourly'][data-disabled=true]")
    assert "stops firing" in asked[0]
    assert console_stack.admin.get(api).json()["results"][0]["triggerContext"]["disabled"] is True
    _accept_next_dialog(page)
    row.locator("button.enable").click()
    page.wait_for_selector(f"tr[data-trigger='{ns}.scheduled.hourly'][data-disabled=false]")

    row.locator("button.open-backfill").click()
    row.locator(".backfill-start").fill("2026-01-01T00:00")
    row.locator(".backfill-end").fill("2026-01-01T03:00")
    asked = _accept_next_dialog(page)
    row.locator("button.start-backfill").click()
    row.locator("button.pause-backfill").wait_for()
    assert "one execution per schedule slot" in asked[0]
    backfill = console_stack.admin.get(api).json()["results"][0]["triggerContext"]["backfill"]
    assert backfill["paused"] is False and backfill["end"].startswith("2026-01-01")
    _accept_next_dialog(page)
    row.locator("button.pause-backfill").click()
    row.locator("button.unpause-backfill").wait_for()
    assert console_stack.admin.get(api).json()["results"][0]["triggerContext"]["backfill"]["paused"] is True
    _shot(page, console_stack, "triggers")
    asked = _accept_next_dialog(page)
    row.locator("button.delete-backfill").click()
    row.locator("button.open-backfill").wait_for()
    assert "keep running" in asked[0]
    assert "backfill" not in console_stack.admin.get(api).json()["results"][0]["triggerContext"]

    # Dismissed: nothing changes. Accepted: the unlock is audited with the person.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("button.unlock").click()
    asked = _accept_next_dialog(page)
    row.locator("button.unlock").click()
    expect(row.locator("button.unlock")).to_be_enabled()
    assert "next slot" in asked[0]
    assert row.locator(".row-status .error-box").count() == 0
    assert console_stack.admin.get(api).json()["results"][0]["triggerContext"]["nextExecutionDate"]

    # A viewer sees the trigger and no button.
    _user(console_stack, VIEWER, "viewer")
    viewer = new_page()
    _login(viewer, VIEWER)
    viewer.goto(f"/ui/triggers?namespace={ns}")
    viewer.locator(f"tr[data-trigger='{ns}.scheduled.hourly']").wait_for()
    assert viewer.locator("#trigger-list button").count() == 0


def test_kv_keys_are_set_typed_edited_and_deleted_and_an_operator_only_reads(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    ns = f"{NS}.kv"
    page = new_page()
    _login(page)
    page.goto(f"/ui/kv?namespace={ns}")
    page.wait_for_selector("#kv-empty")
    page.click("#kv-new")
    page.fill("#kv-key", "greeting")
    page.fill("#kv-value", 'hello "world"')
    page.click("#kv-save")
    page.wait_for_selector("#kv-saved")
    got = console_stack.admin.get(f"/namespaces/{ns}/kv/greeting").json()
    assert (got["type"], got["value"]) == ("STRING", 'hello "world"')
    page.wait_for_selector("#kv-entry #kv-entry-type:has-text('STRING')")

    # A word chosen as a NUMBER is refused before sending (the API would store it as text); broken JSON is
    # the API's error naming the body; a JSON object is kept as JSON.
    page.click("#kv-edit-button")
    page.select_option("#kv-type", "NUMBER")
    page.fill("#kv-value", "twelve")
    page.click("#kv-save")
    page.wait_for_selector("#kv-status .error-box:has-text('NUMBER needs a number')")
    page.select_option("#kv-type", "JSON")
    page.fill("#kv-value", "{broken")
    page.click("#kv-save")
    page.wait_for_selector("#kv-status .error-box:has-text('body')")
    assert console_stack.admin.get(f"/namespaces/{ns}/kv/greeting").json()["revision"] == 1
    page.fill("#kv-value", '{"a": [1, 2]}')
    page.click("#kv-save")
    page.wait_for_selector("#kv-entry-type:has-text('JSON')")
    assert console_stack.admin.get(f"/namespaces/{ns}/kv/greeting").json()["value"] == {"a": [1, 2]}
    assert "revision 2" in page.inner_text("#kv-entry")
    _shot(page, console_stack, "kv")

    _user(console_stack, OPERATOR, "operator")
    operator = new_page()
    _login(operator, OPERATOR)
    operator.goto(f"/ui/kv?namespace={ns}")
    operator.locator("#kv-list tr[data-key=greeting]").wait_for()
    assert operator.locator("#kv-new, .kv-delete").count() == 0
    operator.click("#kv-list .kv-show")
    operator.wait_for_selector("#kv-entry")
    assert operator.locator("#kv-edit-button").count() == 0

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#kv-list tr[data-key=greeting] .kv-delete")
    assert console_stack.admin.get(f"/namespaces/{ns}/kv/greeting").status_code == 200
    asked = _accept_next_dialog(page)
    page.click("#kv-list tr[data-key=greeting] .kv-delete")
    page.wait_for_selector("#kv-deleted")
    assert "greeting" in asked[0]
    page.wait_for_selector("#kv-empty")
    assert console_stack.admin.get(f"/namespaces/{ns}/kv/greeting").status_code == 404


def test_namespace_files_are_uploaded_browsed_downloaded_and_deleted_by_role(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    ns = f"{NS}.files"
    page = new_page()
    _login(page)
    page.goto(f"/ui/files?namespace={ns}")
    page.wait_for_selector("#files-empty")
    page.set_input_files(
        "#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"remember\n"}]
    )
    page.click("#file-upload")
    page.wait_for_selector("#file-list tr[data-path='/notes.txt']")
    page.fill("#folder-name", "scripts")
    page.click("#folder-form button")
    page.wait_for_url(re.compile(r"path=%2Fscripts"))
    page.wait_for_selector("#files-empty")
    page.set_input_files(
        "#file-input", files=[{"name": "hello.py", "mimeType": "text/x-python", "buffer": b"print('hi')\n"}]
    )
    page.click("#file-upload")
    page.wait_for_selector("#file-list tr[data-path='/scripts/hello.py']")
    with page.expect_download() as download:
        page.click("#file-list tr[data-path='/scripts/hello.py'] a.download")
    assert open(download.value.path(), "rb").read() == b"print('hi')\n"  # noqa: SIM115
    assert console_stack.admin.get(f"/namespaces/{ns}/files/search", params={"q": ""}).json() == [
        "/notes.txt", "/scripts/hello.py"
    ]  # fmt: skip

    page.click("#files-path a[data-path='/']")
    page.wait_for_selector("#file-list tr[data-path='/scripts'][data-type=Directory]")
    _shot(page, console_stack, "files")

    _user(console_stack, OPERATOR, "operator")
    _user(console_stack, VIEWER, "viewer")
    operator = new_page()
    _login(operator, OPERATOR)
    operator.goto(f"/ui/files?namespace={ns}")
    operator.wait_for_selector("#file-list tr[data-path='/notes.txt']")
    assert operator.locator("#upload-form, .file-delete").count() == 0
    viewer = new_page()
    _login(viewer, VIEWER)
    viewer.goto(f"/ui/files?namespace={ns}")
    viewer.wait_for_selector("#files-no-access")

    asked = _accept_next_dialog(page)
    page.click("#file-list tr[data-path='/scripts'] .file-delete")
    page.wait_for_selector("#file-deleted")
    assert "everything in it" in asked[0]
    listed = console_stack.admin.get(f"/namespaces/{ns}/files/directory").json()
    assert [e["fileName"] for e in listed] == ["notes.txt"]


def test_bulk_actions_say_what_applies_and_report_done_and_skipped(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    ns = f"{NS}.bulk"
    failed = [_run(console_stack, ns, "failing", FAILING)["id"] for _ in range(2)]
    succeeded = _run(console_stack, ns, "quick", QUICK)["id"]
    page = new_page()
    _login(page)
    page.goto(f"/ui/executions?namespace={ns}")
    page.wait_for_selector(f"#execution-list tr[data-execution='{succeeded}']")
    assert page.locator("#bulk-bar .bulk-tools").is_hidden()
    page.check("#pick-all")
    expect(page.locator("#bulk-count")).to_have_text("3 selected")
    assert page.locator("button.bulk-kill").is_disabled()  # all three ended
    _shot(page, console_stack, "executions-bulk")

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button.bulk-restart")
    assert console_stack.admin.get(f"/executions/{failed[0]}").json()["state"]["current"] == "FAILED"
    asked = _accept_next_dialog(page)
    page.click("button.bulk-restart")
    result = page.locator("#bulk-result")
    result.wait_for()
    assert "Restart 2 of the 3 selected" in asked[0] and "1 skipped: 1 not FAILED" in asked[0]
    assert (result.get_attribute("data-done"), result.get_attribute("data-skipped")) == ("2", "1")
    assert "2 restarted, 1 skipped" in result.inner_text()
    for execution_id in failed:
        console_stack.wait_for_state(execution_id, {"FAILED"})
        history = console_stack.admin.get(f"/executions/{execution_id}").json()["state"]["histories"]
        assert any(h["state"] == "RESTARTED" for h in history)

    page.wait_for_selector(f"#execution-list tr[data-execution='{failed[0]}'][data-state=FAILED]")
    page.check("#pick-all")
    page.fill("#bulk-label", "team:bulk")
    asked = _accept_next_dialog(page)
    page.click("button.bulk-label")
    expect(page.locator("#bulk-result")).to_have_attribute("data-done", "3")
    assert "Add label team:bulk to 3 of the 3" in asked[0]
    for execution_id in [*failed, succeeded]:
        labels = console_stack.admin.get(f"/executions/{execution_id}").json()["labels"]
        assert {"key": "team", "value": "bulk"} in labels

    # A double-click asks once and replays once: the buttons are disabled while the request runs.
    page.check(f"#execution-list tr[data-execution='{succeeded}'] input.pick")
    asked = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.dblclick("button.bulk-replay")
    expect(page.locator("#bulk-result")).to_have_attribute("data-done", "1")
    page.remove_listener("dialog", accept)
    assert len(asked) == 1 and "Replay 1 of the 1 selected" in asked[0]
    found = console_stack.admin.get("/executions/search", params={"namespace": ns, "size": 50}).json()["results"]
    assert len([e["id"] for e in found if e.get("parentId") == succeeded]) == 1

    # An operator picks and acts; a viewer has no checkbox and no action.
    _user(console_stack, VIEWER, "viewer")
    viewer = new_page()
    _login(viewer, VIEWER)
    viewer.goto(f"/ui/executions?namespace={ns}")
    viewer.wait_for_selector(f"#execution-list tr[data-execution='{succeeded}']")
    assert viewer.locator("#pick-all, input.pick, #bulk-bar button:visible").count() == 0


def _no_overflow(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


_WIDE = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""


def test_the_new_pages_fit_a_phone_and_their_load_is_measured(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    ns = f"{NS}.phone"
    _run(console_stack, ns, "quick", QUICK)
    _run(console_stack, ns, "failing", FAILING)
    console_stack.deploy(SCHEDULED.format(ns=ns))
    assert console_stack.admin.put(f"/namespaces/{ns}/kv/region", content='"eu-west-1"').status_code == 200
    upload = {"fileContent": ("query.sql", b"select 1;\n", "text/plain")}
    assert (
        console_stack.admin.post(f"/namespaces/{ns}/files", params={"path": "/sql/query.sql"}, files=upload).status_code
        == 200
    )
    page = new_page()
    _login(page)
    pages = {
        "dashboard": (f"/ui/dashboard?namespace={ns}", "#state-chart"),
        "triggers": (f"/ui/triggers?namespace={ns}", "#trigger-list"),
        "kv": (f"/ui/kv?namespace={ns}", "#kv-list"),
        "files": (f"/ui/files?namespace={ns}", "#file-list"),
        "executions-bulk": (f"/ui/executions?namespace={ns}", "#execution-list"),
    }
    timings: dict[str, Any] = {}
    for device, size in (("desktop", (1360, 860)), ("phone", (390, 844))):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        for name, (path, ready) in pages.items():
            requests: list[Any] = []

            def count(request: Any, requests: list[Any] = requests) -> None:
                requests.append(request)

            page.on("request", count)
            page.goto(path)
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            page.remove_listener("request", count)
            timings[f"{device} {name}"] = {
                "document_ms": page.evaluate("Math.round(performance.getEntriesByType('navigation')[0].duration)"),
                "data_ms": page.evaluate(
                    "Math.round(Math.max(0, ...performance.getEntriesByType('resource').map(e => e.responseEnd)))"
                ),
                "requests": len(requests),
            }
            if device == "desktop":
                continue
            if name == "executions-bulk":
                page.check("#pick-all")
                page.wait_for_selector("#bulk-bar .bulk-tools:visible")
            if name == "triggers":
                page.click("button.open-backfill")
            assert _no_overflow(page), (name, page.evaluate(_WIDE))
            page.screenshot(path=str(console_stack.screenshots / f"phone-{name}.png"))
    (console_stack.screenshots / "timings-pages.json").write_text(json.dumps(timings, indent=1))
    assert all(t["data_ms"] < 5000 for t in timings.values()), timings
