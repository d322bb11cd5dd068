"""Two agents of one execution paused for approval get a decision each: one approved, one rejected, each audited."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.agent_flows import agent_flow, task_tool
from tests.harness.executions import task_runs
from tests.harness.stack import Stack
from tests.harness.waiting import wait_until

TWO_GATED_AGENTS = """
id: two-agents
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: refunds
        type: io.kestra.plugin.ai.agent.AIAgent
        prompt: "refunds {{ inputs.question }}"
        tools:
          - type: io.kestra.plugin.ai.tool.KestraTask
            requireApproval: true
            tasks:
              - id: refund
                type: io.kestra.plugin.core.debug.Return
                format: "..."
      - id: credits
        type: io.kestra.plugin.ai.agent.AIAgent
        prompt: "credits {{ inputs.question }}"
        tools:
          - type: io.kestra.plugin.ai.tool.KestraTask
            requireApproval: true
            tasks:
              - id: credit
                type: io.kestra.plugin.core.debug.Return
                format: "..."
pluginDefaults:
  - type: io.kestra.plugin.ai.agent.AIAgent
    values:
      provider: {type: openai, modelName: gpt-4o-mini}
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
"""


def _both_paused(stack: Stack, execution_id: str) -> dict[str, Any]:
    """The execution once both agents are paused (or it ended: the assertions then say what happened)."""

    def settled() -> dict[str, Any] | None:
        execution = stack.wait_for_state(execution_id, {"PAUSED", "FAILED", "SUCCESS"}, timeout_s=60)
        states = [r["state"]["current"] for r in task_runs(execution, "refunds") + task_runs(execution, "credits")]
        return execution if states == ["PAUSED", "PAUSED"] or execution["state"]["current"] != "PAUSED" else None

    return wait_until(settled, timeout_s=30, interval_s=0.25, message="both agents paused")


def test_two_paused_agents_of_one_execution_get_a_decision_each(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(TWO_GATED_AGENTS)
    question = uuid.uuid4().hex
    refunds = openai_wire.script(
        f"refunds {question}",
        Reply.tool_calls_of(("kestra_task_refund", {"format": "refund 30 EUR"}), id_prefix="r"),
        Reply.text("Refunded."),
    )
    credits = openai_wire.script(
        f"credits {question}",
        Reply.tool_calls_of(("kestra_task_credit", {"format": "credit 500 EUR"}), id_prefix="c"),
        Reply.text("No credit then."),
    )
    created = stack.run(unique_namespace, "two-agents", question=question)
    execution = _both_paused(stack, created["id"])
    assert execution["state"]["current"] == "PAUSED", execution
    [refund_agent], [credit_agent] = task_runs(execution, "refunds"), task_runs(execution, "credits")
    assert refund_agent["state"]["current"] == credit_agent["state"]["current"] == "PAUSED"
    asked = stack.api.get(f"/executions/{created['id']}/approvals").json()["taskRuns"]
    assert sorted(a["kind"] for a in asked) == ["agent-tool", "agent-tool"]

    first = stack.api.post(
        f"/executions/{created['id']}/actions/approve", json={"taskRunId": refund_agent["id"], "reason": "fair"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["state"]["current"] == "PAUSED"  # the other agent still waits for its own decision
    second = stack.api.post(
        f"/executions/{created['id']}/actions/reject", json={"taskRunId": credit_agent["id"], "reason": "too much"}
    )
    assert second.status_code == 200, second.text
    done = stack.wait_for_state(created["id"], timeout_s=60)

    assert done["state"]["current"] == "SUCCESS", done
    assert task_runs(done, "refund")[0]["outputs"] == {"value": "refund 30 EUR"}
    assert task_runs(done, "credit") == []  # rejected: never ran
    assert "too much" in json.dumps(credits.requests[-1]["messages"])
    assert json.loads(refunds.requests[-1]["messages"][-1]["content"]) == {"value": "refund 30 EUR"}
    events = stack.api.get(f"/executions/{created['id']}/audit").json()["events"]
    decided = {e["subject"]: e["action"] for e in events if e["action"].startswith("agent.tool_")}
    assert decided == {refund_agent["id"]: "agent.tool_approved", credit_agent["id"]: "agent.tool_rejected"}


AGENT_PAUSING_ON_BUDGET = agent_flow(
    "agent-budget-pause",
    task_tool("- id: note\n  type: io.kestra.plugin.core.log.Log\n  message: noted", tool_type="KestraTask"),
    more="budget:\n  maxTokens: 50\n  onExceed: PAUSE",
    short_provider=True,
    agent_type="AIAgent",
)


def _paused_on_budget(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> tuple[str, Any]:
    deploy_flow(AGENT_PAUSING_ON_BUDGET)
    question = uuid.uuid4().hex
    tool = Reply.tool_calls_of(("kestra_task_note", {}), tokens_in=40, tokens_out=5)
    script = openai_wire.script(question, tool, tool, Reply.text("Done.", tokens_in=40, tokens_out=5))
    created = stack.run(unique_namespace, "agent-budget-pause", question=question)
    execution = stack.wait_for_state(created["id"], {"PAUSED", "FAILED", "SUCCESS"}, timeout_s=60)
    assert execution["state"]["current"] == "PAUSED", execution
    assert len(script.requests) == 2  # the third call found the budget spent and was not sent
    [asked] = stack.api.get(f"/executions/{created['id']}/approvals").json()["taskRuns"]
    assert asked["proposal"]["kind"] == "budget"
    assert "LLM budget exceeded for this task run: 90 tokens (max 50)" in asked["proposal"]["reason"]
    return str(created["id"]), script


def test_an_agent_over_its_budget_with_on_exceed_pause_waits_and_goes_on_once_approved(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    execution_id, script = _paused_on_budget(stack, deploy_flow, unique_namespace, openai_wire)

    approved = stack.api.post(f"/executions/{execution_id}/actions/approve", json={"reason": "worth it"})
    assert approved.status_code == 200, approved.text
    done = stack.wait_for_state(execution_id, timeout_s=60)

    assert done["state"]["current"] == "SUCCESS", done
    assert task_runs(done, "agent")[0]["outputs"]["textOutput"] == "Done."
    assert len(script.requests) == 3
    events = stack.api.get(f"/executions/{execution_id}/audit").json()["events"]
    [decision] = [e for e in events if e["action"] == "agent.tool_approved"]
    assert decision["payload"]["tool"] == "budget overrun" and decision["payload"]["reason"] == "worth it"


def test_a_rejected_budget_overrun_fails_the_agent_without_calling_the_model(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    execution_id, script = _paused_on_budget(stack, deploy_flow, unique_namespace, openai_wire)

    rejected = stack.api.post(f"/executions/{execution_id}/actions/reject", json={"reason": "too costly"})
    assert rejected.status_code == 200, rejected.text
    done = stack.wait_for_state(execution_id, timeout_s=60)

    assert done["state"]["current"] == "FAILED", done
    assert len(script.requests) == 2
    logs = stack.api.get(f"/logs/{execution_id}").json()
    messages = [line["message"] for line in (logs if isinstance(logs, list) else logs.get("results", []))]
    assert any("rejected the overrun: too costly" in m for m in messages), messages
