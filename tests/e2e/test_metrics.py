"""Metrics end to end: the server's /metrics and a worker group's metrics port after flows ran."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack
from tests.fakes.openai_wire import OpenAIWire, Reply

#: The Sleep first makes the rest travel to the control workers: a flow of pure control tasks alone would run
#: in the server's submit transaction (engine/local_drive.py), and its metrics would be the server's.
OK_AND_FAILING = """
id: metrics-{kind}
namespace: {ns}
tasks:
  - id: start
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0S
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: maybe-fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{fail}"
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def wait_for(check: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def _run_both(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], ns: str) -> None:
    for kind, fail in (("ok", "false"), ("bad", "true")):
        deploy_flow(OK_AND_FAILING.replace("{kind}", kind).replace("{fail}", "{{ " + fail + " }}"))
        created = stack.run(ns, f"metrics-{kind}")
        stack.wait_for_state(created["id"])


def server_metrics_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.settings.port}/metrics"


def worker_metrics_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['CHORUS_METRICS_PORT']}/metrics"


def test_the_server_counts_requests_by_route_template_and_executions_started(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _run_both(stack, deploy_flow, unique_namespace)

    samples = scrape(server_metrics_url(stack))

    # The template of the route (its router prefix, `/api/v1[/{tenant}]`, is not part of it).
    route = "/executions/{namespace}/{flow_id}"
    assert value(samples, "chorus_http_requests_total", route=route, method="POST", status="200") >= 2
    assert not any(unique_namespace in dict(ls).get("route", "") for (_, ls) in samples)
    assert value(samples, "chorus_executions_started_total", namespace=unique_namespace) == 2
    assert value(samples, "chorus_http_request_duration_seconds_count", route=route) >= 2
    assert ("chorus_queue_depth_messages", frozenset({("pool", "control")})) in samples


def test_the_worker_group_reports_task_runs_by_type_and_executions_ended_by_state(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _run_both(stack, deploy_flow, unique_namespace)

    def ended() -> bool:
        s = scrape(worker_metrics_url(stack))
        return value(s, "chorus_executions_ended_total", namespace=unique_namespace) == 2

    wait_for(ended)
    samples = scrape(worker_metrics_url(stack))
    assert value(samples, "chorus_executions_ended_total", namespace=unique_namespace, state="SUCCESS") == 1
    assert value(samples, "chorus_executions_ended_total", namespace=unique_namespace, state="FAILED") == 1
    assert value(samples, "chorus_task_runs_ended_total", task_type="Log", pool="control", state="SUCCESS") >= 2
    assert value(samples, "chorus_task_run_duration_seconds_count", task_type="Fail", pool="control") >= 2
    assert value(samples, "chorus_worker_celery_task_duration_seconds_count", pool="control") >= 4
    assert value(samples, "chorus_audit_events_written_total", kind="task_run") >= 8
    # The gauge is exported per pool and goes back to zero once the work ends (every start is matched by an end).
    assert ("chorus_worker_celery_tasks_in_flight", frozenset({("pool", "control")})) in samples
    wait_for(
        lambda: value(scrape(worker_metrics_url(stack)), "chorus_worker_celery_tasks_in_flight", pool="control") == 0
    )


SLOW_COMPLETION = """
id: slow-model
namespace: {ns}
inputs:
  - id: text
    type: STRING
tasks:
  - id: ask
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    model: gpt-4o-mini
    prompt: "{{ inputs.text }}"
"""


def test_the_ai_pool_reports_its_outstanding_model_calls_while_the_model_is_slow_to_answer(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(SLOW_COMPLETION)
    text = f"take your time {uuid.uuid4().hex}"
    openai_wire.script(text, Reply.slow(4.0, "done"))

    created = stack.run(unique_namespace, "slow-model", text=text)
    # KEDA scales the ai pool on queued + running task runs + these calls (deploy/helm autoscaling.yaml).
    wait_for(lambda: value(scrape(worker_metrics_url(stack)), "chorus_llm_calls_in_flight", pool="ai") >= 1)
    assert stack.wait_for_state(created["id"], timeout_s=60)["state"]["current"] == "SUCCESS"
    wait_for(lambda: value(scrape(worker_metrics_url(stack)), "chorus_llm_calls_in_flight", pool="ai") == 0)
