"""The web console in headless Chromium against a real server and worker: log in, author, run, watch, approve, audit."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.e2e.console.editor_driver import set_source
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.services import psycopg_url

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"console.n{uuid.uuid4().hex[:8]}"

#: Line 20 holds a misspelt task type: the editor must mark exactly that line.
BROKEN_FLOW = f"""id: greet
namespace: {NS}
labels:
  team: console
inputs:
  - id: name
    type: STRING
  - id: shout
    type: BOOLEAN
    defaults: false
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{{{ inputs.name }}}}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Lgo
        message: "item {{{{ taskrun.value }}}}"
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.name }}}} done"
  - id: settle
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
"""

APPROVAL_FLOW = f"""id: deploy-gate
namespace: {NS}
tasks:
  - id: plan
    type: io.kestra.plugin.core.log.Log
    message: planning the release
  - id: wait_for_approval
    type: io.kestra.plugin.core.flow.Pause
    description: Ship release 2.4 to production?
    onResume:
      - id: reason
        type: STRING
        description: Why
      - id: ticket
        type: INT
  - id: ship
    type: io.kestra.plugin.core.log.Log
    message: "shipping because {{{{ outputs.wait_for_approval.onResume.reason }}}}"
"""

AI_FLOW = f"""id: triage
namespace: {NS}
tasks:
  - id: classify
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: "{{{{ secret('OPENAI_API_KEY') }}}}"
    baseUrl: "{{{{ secret('OPENAI_BASE_URL') }}}}"
    model: gpt-4o-mini
    prompt: "console-triage: is this urgent?"
    budget:
      maxTokens: 100
"""


def _shot(page: Any, stack: ConsoleStack, name: str) -> None:
    page.screenshot(path=str(stack.screenshots / f"{name}.png"), full_page=True)


def _login(page: Any, username: str = ADMIN[0], password: str = ADMIN[1]) -> None:
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))


def _ensure(stack: ConsoleStack, flow_id: str, source: str) -> None:
    """Deploy unless an earlier test did (each test also runs alone, e.g. with -k)."""
    if stack.admin.get(f"/flows/{NS}/{flow_id}").status_code == 404:
        stack.deploy(source)


def _run_paused(stack: ConsoleStack) -> str:
    _ensure(stack, "deploy-gate", APPROVAL_FLOW)
    execution = stack.admin.post(f"/executions/{NS}/deploy-gate").json()
    stack.wait_for_state(execution["id"], {"PAUSED"})
    return str(execution["id"])


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_console(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    page = new_page()
    page.goto("/ui/executions")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    _shot(page, console_stack, "login")
    page.fill("#username", ADMIN[0])
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-status .error-box")
    assert "wrong username or password" in page.inner_text("#login-status")

    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/executions"))  # back where the user was going
    assert page.inner_text("#whoami") == ADMIN[0]  # the person, not the actor string
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["chorus_session"]["httpOnly"] and cookies["chorus_session"]["sameSite"] == "Strict"


def test_a_flow_is_deployed_from_the_editor_after_its_error_is_marked_on_its_line(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    page = new_page()
    _login(page)
    page.click("#new-flow")
    set_source(page, BROKEN_FLOW)

    page.wait_for_selector(".cm-errorLine")
    assert page.eval_on_selector_all(".cm-errorLine", "els => els.map(e => e.dataset.errorLine)") == ["20"]
    problem = page.inner_text("#problems .problem")
    assert "line 20" in problem and "tasks[1].tasks[0].type" in problem and "io.kestra.plugin.core.log.Log" in problem
    # The live topology beside the code names the task in error.
    page.wait_for_selector("#flow-topology .node.has-error[data-task=item]")
    assert page.locator("#flow-topology .node.has-error").count() == 1
    _shot(page, console_stack, "flow-editor-validation")

    set_source(page, BROKEN_FLOW.replace("log.Lgo", "log.Log"))
    page.wait_for_selector("#valid")
    assert page.locator(".cm-errorLine, .cm-lint-marker-error").count() == 0
    page.click("#save-flow")
    page.wait_for_url(re.compile(rf"/ui/flows/{NS}/greet/editor"))
    page.wait_for_selector("text=revision 1")
    assert console_stack.admin.get(f"/flows/{NS}/greet").json()["revision"] == 1

    # A second revision, compared with the first on the revisions tab.
    set_source(page, BROKEN_FLOW.replace("log.Lgo", "log.Log").replace("Hello", "Hi"))
    page.click("#save-flow")
    page.wait_for_selector("text=revision 2")
    page.click("#tab-revisions")
    page.wait_for_selector("#diff .dadd")
    assert "Hi {{ inputs.name }}" in page.inner_text("#diff .dadd")
    assert "Hello {{ inputs.name }}" in page.inner_text("#diff .ddel")
    _shot(page, console_stack, "flow-revisions-diff")
    page.goto("/ui/flows")
    page.fill("#filter-label", "team:nobody")
    page.wait_for_selector("#flow-list >> text=0 flow(s)")
    page.fill("#filter-label", "team:console")
    page.select_option("#filter-namespace", NS)
    page.wait_for_selector(f"tr[data-flow='{NS}.greet']")
    _shot(page, console_stack, "flows")


def test_a_run_with_inputs_is_watched_to_its_end_on_the_topology(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    _ensure(console_stack, "greet", BROKEN_FLOW.replace("log.Lgo", "log.Log"))
    page = new_page()
    _login(page)
    # Every state the header shows, recorded in the page: more than one proves live updates without reloads.
    page.add_init_script(
        """new MutationObserver(() => {
            const badge = document.querySelector('#execution-state [data-state]');
            if (!badge) return;
            const seen = (window.__states = window.__states || []);
            if (seen.at(-1) !== badge.dataset.state) seen.push(badge.dataset.state);
        }).observe(document, {subtree: true, childList: true});"""
    )
    page.goto(f"/ui/flows/{NS}/greet/run")
    assert page.get_attribute("#input-shout", "type") == "checkbox"  # typed inputs make typed controls
    page.fill("#input-name", "Ada")
    page.click("#run-submit")
    page.wait_for_url(re.compile(r"/ui/executions/\w+"))

    # The page follows the execution over SSE: no reload, the nodes turn green as task runs end.
    page.wait_for_selector("#execution-state [data-state=SUCCESS]", timeout=30_000)
    page.click("#tab-topology")
    page.wait_for_selector("#topology .node[data-task=done][data-state=SUCCESS]")
    assert page.locator("#topology .node[data-task=each].cluster .node[data-task=item]").count() == 1
    chips = page.eval_on_selector_all(
        "#topology .node[data-task=item] .chip", "els => els.map(e => [e.textContent, e.dataset.state])"
    )
    assert sorted(chips) == [["a", "SUCCESS"], ["b", "SUCCESS"], ["c", "SUCCESS"]]
    _shot(page, console_stack, "execution-topology")
    page.click("#tab-gantt")
    assert page.locator("#gantt .gantt-row").count() >= 6  # hello, each, 3 items, done
    page.click("#tab-logs")
    page.wait_for_selector("#logs tr[data-level=INFO] >> text=/(Hi|Hello) Ada/")
    page.wait_for_selector("#logs tr >> text=item c")  # logs and audit refresh as the stream goes on
    page.click("#tab-audit")
    page.wait_for_selector("#audit tr[data-action='execution.success']")
    page.click("#tab-outputs")
    assert "Ada done" in page.inner_text("#outputs")
    page.click("#tab-logs")
    seen = page.evaluate("window.__states")
    # e.g. RUNNING, then SUCCESS, pushed over SSE (the Sleep travels to a worker: the tasks before it ran in the
    # submit's own transaction, so the page opens on a running execution)
    assert seen[-1] == "SUCCESS" and len(seen) >= 2, seen
    page.select_option("#log-level", "ERROR")
    page.wait_for_selector("#logs >> text=No log lines at this level.")
    page.select_option("#log-level", "INFO")
    page.wait_for_selector("#logs tr >> text=item c")
    execution_id = page.inner_text("#execution-id")
    assert console_stack.admin.get(f"/executions/{execution_id}").json()["inputs"]["name"] == "Ada"
    page.click("#tab-audit")
    page.wait_for_selector("#audit-verified[data-verified=true]")
    page.click("#tab-overview")
    _shot(page, console_stack, "execution")

    page.goto(f"/ui/flows/{NS}/greet/executions")
    page.wait_for_selector(f"tr[data-execution='{execution_id}'][data-state=SUCCESS]")
    page.goto(f"/ui/executions?namespace={NS}")
    page.wait_for_selector(f"tr[data-execution='{execution_id}'][data-state=SUCCESS]")
    _shot(page, console_stack, "executions")


def test_a_paused_execution_is_approved_from_the_inbox_and_the_decision_is_audited(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    execution_id = _run_paused(console_stack)
    page = new_page()
    _login(page)
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{execution_id}']")
    card.wait_for()
    assert "Ship release 2.4 to production?" in card.inner_text()
    assert card.locator("#input-ticket").get_attribute("type") == "number"
    card.locator("#input-reason").fill("release notes reviewed")
    card.locator("#input-ticket").fill("42")
    _shot(page, console_stack, "approvals")
    card.locator("button.approve").click()
    card.wait_for(state="detached")

    done = console_stack.wait_for_state(execution_id)
    assert done["state"]["current"] == "SUCCESS"
    paused_run = next(r for r in done["taskRunList"] if r["taskId"] == "wait_for_approval")
    assert paused_run["outputs"]["onResume"] == {"reason": "release notes reviewed", "ticket": 42}

    page.goto(f"/ui/executions/{execution_id}#audit")  # the tab named in the address opens
    decision = page.locator("#audit tr.decision[data-action='task_run.running']")
    decision.wait_for()
    assert decision.get_attribute("data-actor").startswith(f"token:{ADMIN[0]}/console@")
    assert "approved" in decision.inner_text()
    assert page.get_attribute("#audit-verified", "data-verified") == "true"
    _shot(page, console_stack, "execution-audit")


def test_an_approver_sees_a_proposed_tool_call_and_may_approve_or_reject(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    created = console_stack.admin.post(
        "/users",
        json={"username": "approver@chorus.test", "password": "approver-pw-1", "roles": [{"role": "approver"}]},
    )
    assert created.status_code == 200, created.text
    execution_id = _run_paused(console_stack)
    # What an approval-gated agent leaves on its paused task run (the inbox reads any such outputs).
    proposal = {
        "toolCall": {"tool": "issue_refund", "arguments": {"order": "A-17", "amount": 120}},
        "reasoning": "The customer was charged twice for order A-17.",
    }
    with psycopg.connect(psycopg_url(console_stack.database_url)) as conn:
        conn.execute(
            "UPDATE task_runs SET outputs = %s WHERE execution_id = %s AND state = 'PAUSED'",
            (Jsonb(proposal), execution_id),
        )
    page = new_page()
    _login(page, "approver@chorus.test", "approver-pw-1")
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{execution_id}']")
    card.wait_for()

    assert card.locator(".tool-call .tool-name").inner_text() == "issue_refund"
    assert '"amount": 120' in card.locator(".tool-call pre.json").inner_text()
    assert card.locator(".tool-call .reasoning").inner_text() == proposal["reasoning"]
    assert card.locator("button.reject").count() == 1  # a rejection fails the Pause: the approver's to make
    _shot(page, console_stack, "approvals-tool-call")
    card.locator("#input-reason").fill("refund is right")
    card.locator("#input-ticket").fill("7")
    card.locator("button.approve").click()
    card.wait_for(state="detached")

    assert console_stack.wait_for_state(execution_id)["state"]["current"] == "SUCCESS"
    events = console_stack.admin.get(f"/executions/{execution_id}/audit").json()["events"]
    resumed = next(e for e in events if e["action"] == "task_run.running" and e["payload"].get("from") == "PAUSED")
    assert resumed["actor"].startswith("token:approver@chorus.test/console@")


def test_a_rejection_from_the_inbox_fails_the_pause_with_its_reason_and_a_replay_starts_a_new_execution(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    execution_id = _run_paused(console_stack)
    page = new_page()
    _login(page)
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{execution_id}']")
    card.locator("textarea.reason").fill("not this week")
    card.locator("button.reject").click()
    card.wait_for(state="detached")
    assert console_stack.wait_for_state(execution_id)["state"]["current"] == "FAILED"
    events = console_stack.admin.get(f"/executions/{execution_id}/audit").json()["events"]
    rejected = next(e for e in events if e["action"] == "execution.rejected")
    assert rejected["actor"].startswith(f"token:{ADMIN[0]}/console@")
    assert rejected["payload"]["reason"] == "not this week"

    page.goto(f"/ui/executions/{execution_id}")
    page.wait_for_selector("#execution-state [data-state=FAILED]")
    page.click("#tab-audit")
    decided = page.locator("#audit tr.decision[data-action='execution.rejected']")
    decided.wait_for()
    assert decided.get_attribute("data-actor").startswith(f"token:{ADMIN[0]}/console@")
    page.click("#tab-overview")
    # Replay from the first task run (after its confirmation): a new execution, opened at once, that pauses at
    # the gate again.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#task-runs tr[data-task=plan] button.replay-from").click()
    page.wait_for_url(lambda url: "/ui/executions/" in url and execution_id not in url)
    page.wait_for_selector("#execution-state [data-state=PAUSED]")
    replayed = page.inner_text("#execution-id")
    assert console_stack.admin.get(f"/executions/{replayed}").json()["parentId"] == execution_id
    console_stack.admin.delete(f"/executions/{replayed}/actions/kill")


def test_a_viewer_sees_no_approve_button_and_the_api_refuses_the_approval(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    created = console_stack.admin.post(
        "/users", json={"username": "viewer@chorus.test", "password": "viewer-pw-1", "roles": [{"role": "viewer"}]}
    )
    assert created.status_code == 200, created.text
    execution_id = _run_paused(console_stack)
    page = new_page()
    _login(page, "viewer@chorus.test", "viewer-pw-1")
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{execution_id}']")
    card.wait_for()

    assert card.locator("button.approve").count() == 0
    assert card.locator("button.reject").count() == 0
    assert "not decide" in card.locator(".no-decision").inner_text()
    # The page hides the button; the API refuses anyway, from the viewer's own session (with its CSRF token).
    status = page.evaluate(
        """async (id) => {
            const csrf = document.cookie.split('; ').find(c => c.startsWith('chorus_csrf=')).split('=')[1];
            const r = await fetch(`/api/v1/main/executions/${id}/actions/resume`,
                                  {method: 'POST', headers: {'X-CSRF-Token': csrf}});
            return r.status;
        }""",
        execution_id,
    )
    assert status == 403
    basic = httpx.post(
        f"{console_stack.url}/api/v1/main/executions/{execution_id}/actions/resume",
        auth=("viewer@chorus.test", "viewer-pw-1"),
    )
    assert basic.status_code == 403
    assert console_stack.admin.get(f"/executions/{execution_id}").json()["state"]["current"] == "PAUSED"

    # Elsewhere too, a viewer is shown no control: no kill, no state change, a read-only editor, no run form.
    page.goto(f"/ui/executions/{execution_id}")
    page.wait_for_selector("#execution-state [data-state=PAUSED]")
    assert page.locator("#kill, #to-inbox, .change-state, .replay-from").count() == 0
    page.goto(f"/ui/flows/{NS}/deploy-gate/editor")
    page.wait_for_selector("#flow-source[data-readonly=true] .cm-content[contenteditable=false]")
    assert page.locator("#save-flow").count() == 0
    page.goto(f"/ui/flows/{NS}/deploy-gate/run")
    page.wait_for_selector("text=Your role cannot run this flow.")
    console_stack.admin.delete(f"/executions/{execution_id}/actions/kill")


def test_ai_usage_shows_the_spend_and_how_close_the_budget_came(
    new_page: Callable[[], Any], console_stack: ConsoleStack, openai_wire: OpenAIWire
) -> None:
    openai_wire.script("console-triage", Reply.text("urgent", tokens_in=30, tokens_out=10))
    console_stack.deploy(AI_FLOW)
    execution = console_stack.admin.post(f"/executions/{NS}/triage").json()
    assert console_stack.wait_for_state(execution["id"])["state"]["current"] == "SUCCESS"

    page = new_page()
    _login(page)
    page.goto("/ui/ai-usage")
    row = page.locator("#budgets tr[data-task=classify]")
    row.wait_for()
    assert "40%" in row.inner_text()  # 40 of 100 tokens
    assert int(page.inner_text("#total-tokens")) >= 40
    _shot(page, console_stack, "ai-usage")


AGENT_FLOW = f"""id: refunds-agent
namespace: {NS}
tasks:
  - id: agent
    type: io.kestra.plugin.ai.agent.AIAgent
    provider: {{type: openai, modelName: gpt-4o-mini}}
    baseUrl: "{{{{ secret('OPENAI_BASE_URL') }}}}"
    apiKey: "{{{{ secret('OPENAI_API_KEY') }}}}"
    prompt: "console-agent: the customer was charged twice"
    tools:
      - type: io.kestra.plugin.ai.tool.KestraTask
        requireApproval: true
        tasks:
          - id: refund
            type: io.kestra.plugin.core.debug.Return
            format: "..."
"""


def test_an_approver_rejects_a_real_agents_tool_call_with_a_reason_the_model_is_told(
    new_page: Callable[[], Any], console_stack: ConsoleStack, openai_wire: OpenAIWire
) -> None:
    console_stack.admin.post(
        "/users",
        json={"username": "rita@chorus.test", "password": "rita-approver-1", "roles": [{"role": "approver"}]},
    )
    script = openai_wire.script(
        "console-agent",
        Reply.tool_calls_of(("kestra_task_refund", {"format": "refund 120 EUR"}), content="Refund the double charge."),
        Reply.text("Understood, no refund."),
    )
    console_stack.deploy(AGENT_FLOW)
    execution_id = console_stack.admin.post(f"/executions/{NS}/refunds-agent").json()["id"]
    assert (
        console_stack.wait_for_state(execution_id, {"PAUSED", "FAILED"}, timeout_s=60)["state"]["current"] == "PAUSED"
    )

    page = new_page()
    _login(page, "rita@chorus.test", "rita-approver-1")
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{execution_id}']")
    card.wait_for()
    assert card.locator(".tool-call .tool-name").inner_text() == "kestra_task_refund"
    assert card.locator(".tool-call .reasoning").inner_text() == "Refund the double charge."
    card.locator("textarea.reason").fill("policy: refunds above 100 EUR need a manager")
    card.locator("button.reject").click()
    card.wait_for(state="detached")

    done = console_stack.wait_for_state(execution_id, timeout_s=60)
    assert done["state"]["current"] == "SUCCESS"
    assert "refunds above 100 EUR need a manager" in json.dumps(script.requests[-1]["messages"])
    events = console_stack.admin.get(f"/executions/{execution_id}/audit").json()["events"]
    rejected = next(e for e in events if e["action"] == "agent.tool_rejected")
    assert rejected["actor"].startswith("token:rita@chorus.test/console@")


APPROVAL_TASK_FLOW = f"""id: release-review
namespace: {NS}
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Approval
    inputs:
      - id: ticket
        type: INT
        required: false
    onDeny:
      - id: denied
        type: io.kestra.plugin.core.log.Log
        message: denied
"""


def test_an_approval_task_is_denied_from_the_inbox_with_a_comment(
    new_page: Callable[[], Any], console_stack: ConsoleStack
) -> None:
    _ensure(console_stack, "release-review", APPROVAL_TASK_FLOW)
    execution_id = str(console_stack.admin.post(f"/executions/{NS}/release-review").json()["id"])
    console_stack.wait_for_state(execution_id, {"PAUSED"})
    page = new_page()
    _login(page)
    page.goto("/ui/approvals")
    card = page.locator(f"article.approval[data-execution='{execution_id}']")
    card.wait_for()
    card.locator("#input-ticket").fill("7")
    card.locator("textarea.comment").fill("not this week")
    card.locator("button.reject").click()
    card.wait_for(state="detached")

    done = console_stack.wait_for_state(execution_id)
    assert done["state"]["current"] == "CANCELLED"  # denyBehavior's default
    review = next(r for r in done["taskRunList"] if r["taskId"] == "review")["outputs"]
    assert (review["decision"], review["comment"], review["inputs"]) == ("DENIED", "not this week", {"ticket": 7})
