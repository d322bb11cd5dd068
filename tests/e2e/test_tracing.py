"""Traces over OTLP with the GenAI conventions: the seed flow's span tree, an agent's tool call, the gen_ai metrics.

A cluster of its own (server and one worker group, as processes) exports with the production OTLP/HTTP exporter
to a receiver in this test that decodes the protobuf; the model is the OpenAI-wire fake. Spans come from two
processes (the server creates the execution, the worker runs the tasks and calls the model) and must form one
tree whose ids every process derived from the execution id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.cli.embedded import free_port
from orchestrator.observability.tracing import (
    execution_span_id,
    restarted_run_span_id,
    task_run_span_id,
    trace_id_of,
)
from tests.conftest import empty_redis_db, flush_redis_db
from tests.fakes.fixtures import secret_env
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.fakes.otlp import STATUS_ERROR, OtlpReceiver, ReceivedSpan
from tests.harness import services
from tests.harness.agent_flows import agent_flow, lookup_tool
from tests.harness.cluster import Cluster
from tests.harness.executions import task_runs
from tests.harness.waiting import wait_for_state

SEED_FLOW = Path(__file__).parents[2] / "examples" / "customer-feedback-analysis.deploy.yaml"
NAMESPACE, FLOW_ID, WEBHOOK_KEY = "company.support", "customer-feedback-analysis", "feedback-7c1e"
SPAN_KIND_CLIENT = 3

AGENT_FLOW = agent_flow("traced-agent", lookup_tool(), namespace="tests.tracing")


LOG_THEN_CHAT_FLOW = """
id: log-then-chat
namespace: tests.tracing
inputs:
  - id: question
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "asking {{ inputs.question }}"
  - id: ask
    type: io.kestra.plugin.ai.openai.ChatCompletion
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    model: gpt-4o-mini
    prompt: "{{ inputs.question }}"
"""

SUBFLOW_FLOWS = (
    """
id: traced-child
namespace: tests.tracing
tasks:
  - id: child-log
    type: io.kestra.plugin.core.log.Log
    message: in the child
""",
    """
id: traced-parent
namespace: tests.tracing
tasks:
  - id: call-child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.tracing
    flowId: traced-child
    wait: true
""",
)


@dataclass
class TracedStack:
    api: httpx.Client
    database_url: str
    worker_metrics_url: str
    receiver: OtlpReceiver


@pytest.fixture(scope="module")
def traced(
    admin_url: str, template_database: str, redis_url: str, openai_wire: OpenAIWire, jira_server: JiraServer
) -> Iterator[TracedStack]:
    name = services.unique_database_name("otel")
    database_url = services.create_database(admin_url, name, template=template_database)
    broker = empty_redis_db(services.redis_url(), exclude=redis_url)  # never the session stack's broker
    metrics_port = free_port()
    try:
        with OtlpReceiver() as receiver:
            env = {
                "CHORUS_DATABASE_URL": database_url,
                "CHORUS_BROKER_URL": broker,
                "CHORUS_RESULT_BACKEND": broker,
                "CHORUS_METRICS_PORT": str(metrics_port),
                "CHORUS_SWEEP_INTERVAL_S": "0.2",
                # The standard variable alone turns tracing on; a short batch delay keeps the test quick.
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                **secret_env(openai_wire, jira_server),
            }
            with Cluster(env) as cluster, httpx.Client(base_url=cluster.api_url, timeout=30) as api:
                cluster.start(["control,io,scripts,ai"], concurrency=2)
                for source in (SEED_FLOW.read_text(), AGENT_FLOW, LOG_THEN_CHAT_FLOW, *SUBFLOW_FLOWS):
                    deployed = api.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})
                    assert deployed.status_code == 200, deployed.text
                yield TracedStack(api, database_url, f"http://127.0.0.1:{metrics_port}/metrics", receiver)
    finally:
        flush_redis_db(broker)
        services.drop_database(admin_url, name)


def _audit_hashes(stack: TracedStack, execution_id: str) -> list[tuple[str, str | None, str]]:
    """(action, subject, hash) of the execution's audit events, in chain order."""
    with psycopg.connect(services.psycopg_url(stack.database_url)) as conn:
        rows = conn.execute(
            "SELECT action, subject, hash FROM audit_events WHERE chain_key = %s ORDER BY seq", (execution_id,)
        ).fetchall()
    return [(action, subject, digest) for action, subject, digest in rows]


def _hex(span_id: int) -> str:
    return f"{span_id:016x}"


def _by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    named = {s.name: s for s in spans}
    assert len(named) == len(spans), f"a span name repeats: {sorted(s.name for s in spans)}"
    return named


def _seed_run(stack: TracedStack, openai_wire: OpenAIWire, reply: str) -> tuple[dict[str, Any], list[ReceivedSpan]]:
    feedback = f"The app crashed twice and I lost my order ({uuid.uuid4().hex})"
    openai_wire.script(feedback, Reply.text(reply, tokens_in=40, tokens_out=1))
    created = stack.api.post(f"/executions/webhook/{NAMESPACE}/{FLOW_ID}/{WEBHOOK_KEY}", json={"feedback": feedback})
    assert created.status_code == 200, created.text
    execution = wait_for_state(stack.api, created.json()["id"], timeout_s=60)
    trace_id = f"{trace_id_of(execution['id']):032x}"
    expected = 5 if reply == "NEGATIVE" else 4  # workflow, 2 or 3 task runs, 1 model call
    spans = stack.receiver.wait_for(lambda spans: len(spans) >= expected, trace_id)
    return execution, spans


def test_the_seed_flow_exports_one_span_tree_with_gen_ai_attributes_from_two_processes(
    traced: TracedStack, openai_wire: OpenAIWire
) -> None:
    execution, spans = _seed_run(traced, openai_wire, "NEGATIVE")

    assert execution["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    named = _by_name(spans)
    assert set(named) == {
        f"invoke_workflow {FLOW_ID}",
        "task analyze-sentiment",
        "chat gpt-4o-mini",
        "task check-sentiment",
        "task create-jira-ticket",
    }
    root = named[f"invoke_workflow {FLOW_ID}"]
    analyze, check, jira = (named[f"task {t}"] for t in ("analyze-sentiment", "check-sentiment", "create-jira-ticket"))
    chat = named["chat gpt-4o-mini"]
    # The tree: workflow -> task runs (the If's child below the If) -> the model call below its task run.
    assert root.parent_span_id == "" and root.span_id == _hex(execution_span_id(execution["id"]))
    assert analyze.span_id == _hex(task_run_span_id(runs["analyze-sentiment"]["id"]))
    assert (analyze.parent_span_id, check.parent_span_id) == (root.span_id, root.span_id)
    assert jira.parent_span_id == check.span_id
    assert chat.parent_span_id == analyze.span_id
    # Each span lies within its parent's time.
    for child, parent in ((analyze, root), (check, root), (jira, check), (chat, analyze)):
        assert parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns, (child.name, parent.name)
    # GenAI semantic conventions on the model call, made by the worker process.
    assert chat.kind == SPAN_KIND_CLIENT and chat.service == "chorus-worker"
    assert {k: v for k, v in chat.attributes.items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.id": chat.attributes["gen_ai.response.id"],
        "gen_ai.usage.input_tokens": 40,
        "gen_ai.usage.output_tokens": 1,
        "gen_ai.response.finish_reasons": ["stop"],
    }
    assert chat.attributes["chorus.llm.cost_usd"] == pytest.approx((40 * 0.15 + 1 * 0.60) / 1_000_000)
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == FLOW_ID
    assert (root.attributes["chorus.state"], root.status_code) == ("SUCCESS", 0)
    # Every span names the audit event that recorded the same fact.
    audit = _audit_hashes(traced, execution["id"])
    [llm_call_hash] = [h for action, _, h in audit if action == "llm.call"]
    assert chat.attributes["chorus.audit.hash"] == llm_call_hash
    assert root.attributes["chorus.audit.hash"] == next(h for a, _, h in audit if a == "execution.success")
    jira_run = runs["create-jira-ticket"]["id"]
    assert jira.attributes["chorus.audit.hash"] == next(
        h for a, subject, h in audit if a == "task_run.success" and subject == jira_run
    )


def test_a_task_run_by_the_server_and_one_by_a_worker_hang_in_one_trace(
    traced: TracedStack, openai_wire: OpenAIWire
) -> None:
    question = f"summarise ({uuid.uuid4().hex})"
    openai_wire.script(question, Reply.text("ok"))
    created = traced.api.post("/executions/tests.tracing/log-then-chat", files={"question": (None, question)})
    assert created.status_code == 200, created.text
    execution = wait_for_state(traced.api, created.json()["id"], timeout_s=60)
    assert execution["state"]["current"] == "SUCCESS", execution
    trace_id = f"{trace_id_of(execution['id']):032x}"
    spans = _by_name(traced.receiver.wait_for(lambda spans: len(spans) >= 4, trace_id))

    # The Log ran in the server's submit transaction (local drive), the model call on a worker: no context
    # travelled between them, yet both hang below the same root.
    root = spans["invoke_workflow log-then-chat"]
    assert spans["task hello"].service == "chorus-server"
    assert spans["chat gpt-4o-mini"].service == "chorus-worker"
    assert spans["task hello"].parent_span_id == spans["task ask"].parent_span_id == root.span_id
    assert spans["chat gpt-4o-mini"].parent_span_id == spans["task ask"].span_id


def test_a_subflow_execution_is_a_trace_linked_to_the_subflow_task_run_of_its_parent(traced: TracedStack) -> None:
    created = traced.api.post("/executions/tests.tracing/traced-parent")
    assert created.status_code == 200, created.text
    parent = wait_for_state(traced.api, created.json()["id"], timeout_s=60)
    assert parent["state"]["current"] == "SUCCESS", parent
    [call] = task_runs(parent, "call-child")
    child_id = call["outputs"]["executionId"]

    parent_trace, child_trace = (f"{trace_id_of(i):032x}" for i in (parent["id"], child_id))
    child_spans = traced.receiver.wait_for(lambda spans: len(spans) >= 2, child_trace)  # the workflow and its Log
    parent_spans = traced.receiver.wait_for(lambda spans: len(spans) >= 2, parent_trace)

    [root] = [s for s in child_spans if s.parent_span_id == ""]
    assert root.name == "invoke_workflow traced-child"
    call_span = _hex(task_run_span_id(call["id"]))
    assert root.links == ((parent_trace, call_span),)  # across traces, to the Subflow task run's span
    assert any(s.span_id == call_span and s.name == "task call-child" for s in parent_spans)


def test_an_agent_tool_call_is_an_execute_tool_span_linked_to_its_task_run(
    traced: TracedStack, openai_wire: OpenAIWire
) -> None:
    question = f"where is order A-17? ({uuid.uuid4().hex})"
    openai_wire.script(
        question,
        Reply.tool_call("kestra_task_lookup", {"order_id": "A-17"}, call_id="call_lookup"),
        Reply.text("Order A-17 has shipped."),
    )
    created = traced.api.post("/executions/tests.tracing/traced-agent", files={"question": (None, question)})
    assert created.status_code == 200, created.text
    execution = wait_for_state(traced.api, created.json()["id"], timeout_s=60)
    assert execution["state"]["current"] == "SUCCESS", execution
    trace_id = f"{trace_id_of(execution['id']):032x}"
    # workflow, agent, 2 model calls, 1 tool call, the tool's task run
    spans = traced.receiver.wait_for(lambda spans: len(spans) >= 6, trace_id)

    [agent] = task_runs(execution, "agent")
    [lookup] = task_runs(execution, "lookup")
    invoke = next(s for s in spans if s.name == "invoke_agent agent")
    [tool] = [s for s in spans if s.name == "execute_tool kestra_task_lookup"]
    chats = [s for s in spans if s.name == "chat gpt-4o-mini"]
    assert invoke.span_id == _hex(task_run_span_id(agent["id"]))
    assert invoke.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert [c.parent_span_id for c in chats] == [invoke.span_id, invoke.span_id]
    assert sorted(c.attributes["gen_ai.response.finish_reasons"][0] for c in chats) == ["stop", "tool_calls"]
    assert tool.parent_span_id == invoke.span_id
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "kestra_task_lookup"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_lookup"
    assert tool.links == ((trace_id, _hex(task_run_span_id(lookup["id"]))),)
    assert tool.status_code != STATUS_ERROR
    lookup_end = next(
        h
        for action, subject, h in _audit_hashes(traced, execution["id"])
        if action == "task_run.success" and subject == lookup["id"]
    )
    assert tool.attributes["chorus.audit.hash"] == lookup_end
    assert any(s.span_id == _hex(task_run_span_id(lookup["id"])) for s in spans)


def test_model_calls_are_counted_in_the_gen_ai_client_metrics(traced: TracedStack, openai_wire: OpenAIWire) -> None:
    _seed_run(traced, openai_wire, "NEUTRAL")

    text = httpx.get(traced.worker_metrics_url, timeout=10).text
    call = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
        "gen_ai_response_model": "gpt-4o-mini",
    }

    def sample(name: str, **labels: str) -> float:
        wanted = {**call, **labels}
        [value] = [
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and s.labels == wanted
        ]
        return float(value)

    # At least this test's call (40 in, 1 out); the module's earlier tests add theirs.
    assert sample("gen_ai_client_token_usage_sum", gen_ai_token_type="input") >= 40
    assert sample("gen_ai_client_token_usage_bucket", gen_ai_token_type="output", le="1.0") >= 1
    assert sample("gen_ai_client_token_usage_count", gen_ai_token_type="output") >= 1
    assert sample("gen_ai_client_operation_duration_seconds_count", error_type="") >= 1
    assert sample("gen_ai_client_cost_usd_total") > 0


RESTARTED_FLOW = """
id: traced-restart
namespace: tests.tracing
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
"""


def test_a_restarted_execution_emits_its_root_span_once_and_each_restarted_run_below_it(traced: TracedStack) -> None:
    # The trace and root span ids are derived from the execution id: a restart's end used to emit the root again.
    deployed = traced.api.post("/flows", content=RESTARTED_FLOW, headers={"Content-Type": "application/x-yaml"})
    assert deployed.status_code == 200, deployed.text
    created = traced.api.post("/executions/tests.tracing/traced-restart")
    assert created.status_code == 200, created.text
    execution_id = created.json()["id"]
    assert wait_for_state(traced.api, execution_id, timeout_s=60)["state"]["current"] == "FAILED"
    for _ in range(2):
        restarted = traced.api.post(f"/executions/{execution_id}/restart")
        assert restarted.status_code == 200, restarted.text
        assert wait_for_state(traced.api, execution_id, timeout_s=60)["state"]["current"] == "FAILED"

    name, trace_id = "invoke_workflow traced-restart", f"{trace_id_of(execution_id):032x}"
    spans = traced.receiver.wait_for(lambda got: sum(s.name == name for s in got) >= 3, trace_id)

    root_id = _hex(execution_span_id(execution_id))
    [root] = [s for s in spans if s.span_id == root_id]  # once, however often the execution ended
    runs = sorted((s for s in spans if s.name == name and s is not root), key=lambda s: s.start_ns)
    assert root.parent_span_id == ""
    assert [s.span_id for s in runs] == [_hex(restarted_run_span_id(execution_id, n)) for n in (1, 2)]
    assert [(s.parent_span_id, s.attributes["chorus.execution.restarts"]) for s in runs] == [(root_id, 1), (root_id, 2)]
    assert root.end_ns <= runs[0].start_ns <= runs[0].end_ns <= runs[1].start_ns  # each run from its restart on
