"""AIAgent memory across executions (Kestra's `memory: {type: ...KestraKVStore, memoryId, ttl, messages}`).

Against the real stack and the OpenAI-wire fake: what the second execution sends the model, the API's read
and erase with namespace RBAC, the audit trail, expiry, the bounds, and replays reading their snapshot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.e2e.conftest import Stack
from tests.fakes.openai_wire import OpenAIWire, Reply, Script
from tests.harness.executions import task_runs
from tests.harness.stack import secured_api_over

REMEMBERING = """
id: remembering
namespace: {ns}
inputs:
  - id: question
    type: STRING
  - id: who
    type: STRING
    defaults: john
  - id: ttl
    type: STRING
    defaults: PT1H
  - id: keep
    type: INT
    defaults: 10
  - id: tokens
    type: INT
    defaults: 8000
  - id: drop
    type: STRING
    defaults: NEVER
tasks:
  - id: agent
    type: io.kestra.plugin.ai.agent.AIAgent
    provider:
      type: io.kestra.plugin.ai.provider.OpenAI
      modelName: gpt-4o-mini
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
    systemMessage: You are a helpful assistant.
    prompt: "{{ inputs.question }}"
    memory:
      type: io.kestra.plugin.ai.memory.KestraKVStore
      memoryId: "{{ inputs.who }}"
      ttl: "{{ inputs.ttl }}"
      messages: "{{ inputs.keep }}"
      maxTokens: "{{ inputs.tokens }}"
      drop: "{{ inputs.drop }}"
"""


def _ask(
    stack: Stack, openai_wire: OpenAIWire, namespace: str, words: str, answer: str, **inputs: str
) -> tuple[dict[str, Any], Script, str]:
    """One execution of `remembering` asking `words` (made unique); the execution, its model script, the prompt."""
    question = f"{words} ({uuid.uuid4().hex})"
    script = openai_wire.script(question, Reply.text(answer))
    created = stack.run(namespace, "remembering", question=question, **inputs)
    execution = stack.wait_for_state(created["id"], timeout_s=60)
    assert execution["state"]["current"] == "SUCCESS", execution
    return execution, script, question


def _sent(script: Script) -> list[tuple[str, str]]:
    [request] = script.requests
    return [(m["role"], m["content"]) for m in request["messages"]]


def _audit(stack: Stack, execution_id: str, action: str) -> list[dict[str, Any]]:
    events = stack.api.get(f"/executions/{execution_id}/audit").json()["events"]
    return [e for e in events if e["action"] == action]


def test_a_second_execution_sends_the_first_ones_turns_and_after_an_erase_a_third_sends_none(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(REMEMBERING)
    first, _, intro = _ask(stack, openai_wire, unique_namespace, "Hi, my name is John", "Hello John!")
    second, script, ask = _ask(stack, openai_wire, unique_namespace, "What is my name?", "You are John.")

    assert _sent(script) == [
        ("system", "You are a helpful assistant."),
        ("user", intro),
        ("assistant", "Hello John!"),
        ("user", ask),
    ]
    assert task_runs(second, "agent")[0]["outputs"]["textOutput"] == "You are John."
    [read] = _audit(stack, second["id"], "agent.memory_read")
    assert read["payload"]["memory_id"] == "john" and read["payload"]["messages"] == 2
    [written] = _audit(stack, second["id"], "agent.memory_written")
    assert written["payload"]["added"] == 2 and written["payload"]["messages"] == 4
    assert _audit(stack, first["id"], "agent.memory_written")

    shown = stack.api.get(f"/namespaces/{unique_namespace}/ai/memory/john")
    assert shown.status_code == 200, shown.text
    assert [m["content"] for m in shown.json()["messages"]] == [intro, "Hello John!", ask, "You are John."]
    assert shown.json()["messages"][0]["executionId"] == first["id"]

    erased = stack.api.delete(f"/namespaces/{unique_namespace}/ai/memory/john")
    assert erased.status_code == 200 and erased.json()["erased"] == 4
    assert stack.api.get(f"/namespaces/{unique_namespace}/ai/memory/john").status_code == 404

    third, script, again = _ask(stack, openai_wire, unique_namespace, "What is my name now?", "I do not know.")
    assert _sent(script) == [("system", "You are a helpful assistant."), ("user", again)]
    assert _audit(stack, third["id"], "agent.memory_read")[0]["payload"]["messages"] == 0
    api_events = stack.api.get("/audit", params={"namespace": unique_namespace, "action": "ai_memory.*"}).json()
    assert sorted(e["action"] for e in api_events["results"]) == ["ai_memory.erase", "ai_memory.read", "ai_memory.read"]
    too_long = stack.api.get(f"/namespaces/{unique_namespace}/ai/memory/{'x' * 600}")
    assert too_long.status_code == 422 and "memory.memoryId" in too_long.text, too_long.text


def test_memories_are_per_memory_id_and_expire_after_their_ttl(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(REMEMBERING)
    _ask(stack, openai_wire, unique_namespace, "I am Ada", "Hi Ada", who="ada", ttl="PT2S")
    _, other, question = _ask(stack, openai_wire, unique_namespace, "Who am I?", "No idea", who="bob")
    assert _sent(other)[1:] == [("user", question)]

    time.sleep(2.5)
    _, late, question = _ask(stack, openai_wire, unique_namespace, "Still Ada?", "No idea", who="ada")
    assert _sent(late)[1:] == [("user", question)]  # the memory's last write was more than its ttl ago


def test_over_the_message_or_token_bound_the_oldest_turns_are_dropped_first(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(REMEMBERING)
    asked = [_ask(stack, openai_wire, unique_namespace, f"turn {i}", f"answer {i}", keep="4")[2] for i in range(3)]
    _, script, last = _ask(stack, openai_wire, unique_namespace, "turn 3", "answer 3", keep="4")
    assert _sent(script)[1:] == [
        ("user", asked[1]),
        ("assistant", "answer 1"),
        ("user", asked[2]),
        ("assistant", "answer 2"),
        ("user", last),
    ]
    # A user message here is 15 estimated tokens, an answer 6: read within 40, the oldest one goes first.
    _, script, prompt = _ask(stack, openai_wire, unique_namespace, "turn 4", "answer 4", keep="10", tokens="40")
    assert _sent(script)[1:] == [
        ("assistant", "answer 2"),
        ("user", last),
        ("assistant", "answer 3"),
        ("user", prompt),
    ]
    # ...and its write kept what fits 40 of the six messages then: the newest three.
    _, script, _ = _ask(stack, openai_wire, unique_namespace, "turn 5", "answer 5")
    assert [content for _, content in _sent(script)[1:-1]] == ["answer 3", prompt, "answer 4"]


def test_a_replay_reads_the_memory_as_it_was_when_the_replayed_run_started(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(REMEMBERING)
    _, _, intro = _ask(stack, openai_wire, unique_namespace, "My name is Eve", "Hi Eve")
    second, script, ask = _ask(stack, openai_wire, unique_namespace, "Who am I?", "Eve")
    _ask(stack, openai_wire, unique_namespace, "Later words", "Later answer")  # written after `second` started

    [agent] = task_runs(second, "agent")
    replayed = stack.api.post(f"/executions/{second['id']}/replay", params={"taskRunId": agent["id"]})
    assert replayed.status_code == 200, replayed.text
    again = stack.wait_for_state(replayed.json()["id"], timeout_s=60)

    assert again["state"]["current"] == "SUCCESS", again
    assert len(script.requests) == 2
    replayed_request = [(m["role"], m["content"]) for m in script.requests[1]["messages"]]
    assert replayed_request == _sent_first(script)
    assert replayed_request[1:] == [("user", intro), ("assistant", "Hi Eve"), ("user", ask)]
    [read] = _audit(stack, again["id"], "agent.memory_read")
    assert read["payload"]["snapshot"] is True and read["payload"]["messages"] == 2


def _sent_first(script: Script) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in script.requests[0]["messages"]]


def test_a_memory_type_chorus_does_not_know_is_refused_at_deploy_naming_its_line(stack: Stack) -> None:
    source = REMEMBERING.replace("{ns}", "tests.e2e.memory").replace(
        "io.kestra.plugin.ai.memory.KestraKVStore", "io.kestra.plugin.ai.memory.Mongo"
    )
    response = stack.api.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 422, response.text
    assert "tasks[0].memory.type (line 33" in response.text, response.text


def test_postgresql_and_redis_memories_deploy_and_are_kept_by_chorus_the_same_way(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(
        REMEMBERING.replace(
            "type: io.kestra.plugin.ai.memory.KestraKVStore",
            "type: io.kestra.plugin.ai.memory.Redis\n      host: localhost\n      port: 6379",
        )
    )
    _, _, intro = _ask(stack, openai_wire, unique_namespace, "I am Rita", "Hi Rita")
    _, script, _ = _ask(stack, openai_wire, unique_namespace, "Who am I?", "Rita")
    assert ("user", intro) in _sent(script)


# ---- namespace isolation, with authentication on -------------------------------------------------

ADMIN = ("memory-admin@chorus.test", "memory-admin-password")
OUTSIDER = ("olga-outsider", "olga-password-1")
OPERATOR = ("oscar-operator", "oscar-password-1")


@pytest.fixture(scope="module")
def secured_api(stack: Stack) -> Iterator[TestClient]:
    with secured_api_over(
        stack, ADMIN, {OUTSIDER: [Binding("developer", "tests.other")], OPERATOR: [Binding("operator", "tests.e2e")]}
    ) as client:
        yield client


def test_another_namespace_neither_reads_the_memory_through_the_api_nor_through_its_agent(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    secured_api: TestClient,
) -> None:
    deploy_flow(REMEMBERING)
    _ask(stack, openai_wire, unique_namespace, "My secret word is tulip", "Noted")
    other = f"tests.other.n{uuid.uuid4().hex[:10]}"
    stack.deploy(REMEMBERING.replace("{ns}", other))
    _, script, question = _ask(stack, openai_wire, other, "What is my secret word?", "I do not know")
    assert _sent(script)[1:] == [("user", question)]  # same memory id, another namespace: nothing

    path = f"/api/v1/main/namespaces/{unique_namespace}/ai/memory/john"
    assert secured_api.get(path, auth=OUTSIDER).status_code == 404  # its namespace is invisible to them
    assert secured_api.delete(path, auth=OUTSIDER).status_code == 404
    assert secured_api.get(path, auth=OPERATOR).status_code == 200  # kv.read on tests.e2e
    assert secured_api.delete(path, auth=OPERATOR).status_code == 403  # but not kv.write
    assert secured_api.get(path, auth=ADMIN).status_code == 200
    events = secured_api.get(
        "/api/v1/main/audit", params={"namespace": unique_namespace, "action": "ai_memory.*"}, auth=ADMIN
    ).json()["results"]
    outcomes = sorted((e["action"], e["payload"]["outcome"]) for e in events)
    assert ("ai_memory.erase", "denied") in outcomes and ("ai_memory.read", "success") in outcomes, outcomes


def test_a_restarted_agent_reads_the_memory_its_first_attempt_read(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(REMEMBERING)
    _, _, intro = _ask(stack, openai_wire, unique_namespace, "My name is Max", "Hi Max")
    question = f"Who am I? ({uuid.uuid4().hex})"
    script = openai_wire.script(question, Reply.failure(400, "bad request"), Reply.text("Max"))
    failed = stack.wait_for_state(stack.run(unique_namespace, "remembering", question=question)["id"], timeout_s=60)
    assert failed["state"]["current"] == "FAILED", failed
    _ask(stack, openai_wire, unique_namespace, "Words after the failure", "Noted")  # not for the restart to see

    restarted = stack.api.post(f"/executions/{failed['id']}/restart")
    assert restarted.status_code == 200, restarted.text
    ended = stack.wait_for_state(failed["id"], {"SUCCESS", "FAILED"}, timeout_s=60)

    assert ended["state"]["current"] == "SUCCESS", ended
    first, last = script.requests[0], script.requests[-1]
    assert [(m["role"], m["content"]) for m in last["messages"]] == [
        (m["role"], m["content"]) for m in first["messages"]
    ]
    assert [m["content"] for m in last["messages"]][1:] == [intro, "Hi Max", question]


def test_drop_before_the_task_run_forgets_first_and_after_it_leaves_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(REMEMBERING)
    _ask(stack, openai_wire, unique_namespace, "I am Ann", "Hi Ann")
    fresh, script, question = _ask(stack, openai_wire, unique_namespace, "New start", "Ok", drop="BEFORE_TASKRUN")
    assert _sent(script)[1:] == [("user", question)]
    assert _audit(stack, fresh["id"], "agent.memory_erased")[0]["payload"]["rows"] == 2

    last, script, _ = _ask(stack, openai_wire, unique_namespace, "Once more", "Ok", drop="AFTER_TASKRUN")
    assert [content for _, content in _sent(script)[1:3]] == [question, "Ok"]  # read, then erased
    assert _audit(stack, last["id"], "agent.memory_erased")[0]["payload"]["rows"] == 2
    assert stack.api.get(f"/namespaces/{unique_namespace}/ai/memory/john").status_code == 404


DEFAULT_ID = """
id: default-memory-id
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: first
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "I like tea ({{ inputs.question }})"
  - id: second
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "What do I like? ({{ inputs.question }})"
pluginDefaults:
  - type: io.kestra.plugin.ai.agent.AIAgent
    values:
      provider: {type: io.kestra.plugin.ai.provider.OpenAI, modelName: gpt-4o-mini}
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
      memory:
        type: io.kestra.plugin.ai.memory.KestraKVStore
"""


def test_without_a_memory_id_the_memory_is_the_executions_correlation_id(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(DEFAULT_ID)
    requests = []
    for _ in range(2):
        question = uuid.uuid4().hex
        script = openai_wire.script(question, Reply.text("Tea, noted."), Reply.text("You like tea."))
        created = stack.run(unique_namespace, "default-memory-id", question=question)
        assert stack.wait_for_state(created["id"], timeout_s=60)["state"]["current"] == "SUCCESS"
        requests.append((created["id"], question, script.requests))

    for execution_id, question, (first, second) in requests:
        assert [m["role"] for m in first["messages"]] == ["user"]  # the other execution's turns are not its own
        assert [m["content"] for m in second["messages"]] == [
            f"I like tea ({question})",
            "Tea, noted.",
            f"What do I like? ({question})",
        ]
        shown = stack.api.get(f"/namespaces/{unique_namespace}/ai/memory/{execution_id}")
        assert len(shown.json()["messages"]) == 4, shown.text


TWO_AGENTS = """
id: two-agents
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: introduce
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "I am Sam ({{ inputs.question }})"
  - id: recall
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "Who am I? ({{ inputs.question }})"
pluginDefaults:
  - type: io.kestra.plugin.ai.agent.AIAgent
    values:
      provider: {type: io.kestra.plugin.ai.provider.OpenAI, modelName: gpt-4o-mini}
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
      memory:
        type: io.kestra.plugin.ai.memory.KestraKVStore
        memoryId: sam
"""


def test_a_replay_s_later_agent_reads_what_the_replay_wrote_not_what_the_replayed_run_did(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(TWO_AGENTS)
    question = uuid.uuid4().hex
    script = openai_wire.script(
        question, Reply.text("Hi Sam"), Reply.text("Sam"), Reply.text("Hello again Sam"), Reply.text("Still Sam")
    )
    created = stack.run(unique_namespace, "two-agents", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)
    assert execution["state"]["current"] == "SUCCESS", execution
    [introduce] = task_runs(execution, "introduce")

    replayed = stack.api.post(f"/executions/{created['id']}/replay", params={"taskRunId": introduce["id"]})
    assert replayed.status_code == 200, replayed.text
    again = stack.wait_for_state(replayed.json()["id"], timeout_s=60)

    assert again["state"]["current"] == "SUCCESS", again
    _, _, replayed_introduce, replayed_recall = script.requests
    assert [m["role"] for m in replayed_introduce["messages"]] == ["user"]  # as before `introduce` first ran
    assert [m["content"] for m in replayed_recall["messages"]] == [
        f"I am Sam ({question})",
        "Hello again Sam",  # the replay's own `introduce`, not the original's "Hi Sam"
        f"Who am I? ({question})",
    ]
