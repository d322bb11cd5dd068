"""Replay from the ledger, end to end: the seed flow (examples/customer-feedback-analysis.deploy.yaml) and an agent.

The seed flow is deployed with its tasks unchanged into this test's own namespace, its ChatCompletion
`pluginDefaults` pointed at an OpenAI-wire server of its own (the session's stays up for the other tests): so
this one can be stopped, and a replay that called it would fail.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator.cli import client
from orchestrator.cli.main import build_parser
from orchestrator.cli.main import main as chorus
from tests.e2e.conftest import Stack
from tests.e2e.test_agent_memory import REMEMBERING
from tests.e2e.test_ai_agent import _mcp_flow
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.agent_flows import agent_flow, lookup_tool, mcp_tool
from tests.harness.executions import task_runs
from tests.harness.services import psycopg_url

SEED = Path(__file__).parents[2] / "examples" / "customer-feedback-analysis.deploy.yaml"
FLOW_ID, WEBHOOK_KEY = "customer-feedback-analysis", "feedback-7c1e"


class StoppableWire(OpenAIWire):
    """An OpenAI-wire server a test may stop before the fixture's teardown stops it (again, harmlessly)."""

    stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            super().stop()


@pytest.fixture
def own_wire() -> Iterator[OpenAIWire]:
    """An OpenAI-wire server for this test only."""
    with StoppableWire() as server:
        yield server


def seed_source(namespace: str, wire: OpenAIWire, prompt: str = "Analyze the sentiment") -> str:
    source = SEED.read_text()
    assert "namespace: company.support\n" in source and "baseUrl: \"{{ secret('OPENAI_BASE_URL') }}\"" in source
    source = source.replace("namespace: company.support\n", f"namespace: {namespace}\n")
    source = source.replace("Analyze the sentiment", prompt)
    return source.replace("baseUrl: \"{{ secret('OPENAI_BASE_URL') }}\"", f"baseUrl: {wire.base_url}")


def _deploy_seed(stack: Stack, namespace: str, wire: OpenAIWire) -> None:
    stack.deploy(seed_source(namespace, wire))


def _feedback(stack: Stack, namespace: str, feedback: str) -> dict[str, Any]:
    response = stack.api.post(f"/executions/webhook/{namespace}/{FLOW_ID}/{WEBHOOK_KEY}", json={"feedback": feedback})
    assert response.status_code == 200, response.text
    return stack.wait_for_state(response.json()["id"], timeout_s=60)


def _replay(stack: Stack, execution_id: str, **params: str) -> dict[str, Any]:
    response = stack.api.post(f"/executions/{execution_id}/replay", params=params)
    assert response.status_code == 200, response.text
    return stack.wait_for_state(response.json()["id"], timeout_s=60)


def _provider_calls(stack: Stack, execution_id: str) -> int:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM llm_calls WHERE execution_id = %s", (execution_id,)).fetchone()
    return int(row[0]) if row else 0


def _audit(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    return list(stack.api.get(f"/executions/{execution_id}/audit").json()["events"])


def _outputs(execution: dict[str, Any]) -> dict[str, Any]:
    return {t["taskId"]: t["outputs"] for t in execution["taskRunList"]}


def test_the_seed_flow_replays_from_the_ledger_with_its_provider_stopped(
    stack: Stack, unique_namespace: str, own_wire: OpenAIWire
) -> None:
    _deploy_seed(stack, unique_namespace, own_wire)
    feedback = f"Lovely service, thank you ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("POSITIVE", tokens_in=30, tokens_out=1))
    original = _feedback(stack, unique_namespace, feedback)
    assert original["state"]["current"] == "SUCCESS", original
    assert len(own_wire.received()) == 1 and _provider_calls(stack, original["id"]) == 1

    own_wire.stop()  # from here on, any model call would fail: nothing answers on its port
    replay = _replay(stack, original["id"], mode="ledger")

    assert replay["state"]["current"] == "SUCCESS", replay
    assert _outputs(replay) == _outputs(original)
    assert [t["taskId"] for t in replay["taskRunList"]] == ["analyze-sentiment", "check-sentiment"]
    assert len(own_wire.received()) == 1  # the original's one request, and none since
    assert _provider_calls(stack, replay["id"]) == 0
    [served] = [e for e in _audit(stack, replay["id"]) if e["action"] == "llm.replayed"]
    assert served["payload"]["served_from"] == original["id"]
    diff = stack.api.get(f"/executions/{replay['id']}/diff/{original['id']}").json()
    assert diff["identical"] is True
    assert [(t["path"], t["same"]) for t in diff["tasks"]] == [("analyze-sentiment", True), ("check-sentiment", True)]
    assert (diff["execution"]["providerCalls"], diff["other"]["providerCalls"]) == (0, 1)
    assert diff["execution"]["ledgerReplayOf"] == original["id"]
    original_audit = [e for e in _audit(stack, original["id"]) if e["action"] == "execution.replayed"]
    assert original_audit[-1]["payload"] == {"replay": replay["id"], "mode": "ledger", "liveFrom": None}

    # A replay of the replay: its answers come from the original, up the chain.
    again = _replay(stack, replay["id"], mode="ledger")
    assert again["state"]["current"] == "SUCCESS", again
    assert _outputs(again) == _outputs(original) and _provider_calls(stack, again["id"]) == 0


def test_a_running_provider_sees_no_request_from_a_ledger_replay_and_one_from_live_from(
    stack: Stack, unique_namespace: str, own_wire: OpenAIWire
) -> None:
    _deploy_seed(stack, unique_namespace, own_wire)
    feedback = f"It is fine I guess ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("NEUTRAL"), Reply.text("POSITIVE"))
    original = _feedback(stack, unique_namespace, feedback)
    assert len(own_wire.received()) == 1

    served = _replay(stack, original["id"], mode="ledger")
    assert len(own_wire.received()) == 1
    assert _outputs(served) == _outputs(original)

    live = _replay(stack, original["id"], mode="ledger", liveFrom="analyze-sentiment")

    assert len(own_wire.received()) == 2  # the live task asked the model again, and got another answer
    assert _provider_calls(stack, live["id"]) == 1
    diff = stack.api.get(f"/executions/{live['id']}/diff/{original['id']}").json()
    assert diff["identical"] is False
    [analyze] = [t for t in diff["tasks"] if t["taskId"] == "analyze-sentiment"]
    assert analyze["same"] is False
    assert analyze["other"]["outputs"]["choices"][0]["message"]["content"] == "NEUTRAL"
    assert analyze["execution"]["outputs"]["choices"][0]["message"]["content"] == "POSITIVE"


def test_a_notification_runs_live_in_a_ledger_replay_and_the_diff_shows_it(
    stack: Stack, unique_namespace: str, own_wire: OpenAIWire, jira_server: JiraServer
) -> None:
    """Only model and tool calls are in the ledger: the Jira issue is created again (a new key), as documented."""
    _deploy_seed(stack, unique_namespace, own_wire)
    feedback = f"The app crashed and I lost my order ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("NEGATIVE"))
    original = _feedback(stack, unique_namespace, feedback)
    assert original["state"]["current"] == "SUCCESS", original
    own_wire.stop()

    replay = _replay(stack, original["id"], mode="ledger")

    assert replay["state"]["current"] == "SUCCESS", replay
    assert len(jira_server.issues_mentioning(feedback)) == 2
    diff = stack.api.get(f"/executions/{replay['id']}/diff/{original['id']}").json()
    same = {t["taskId"]: t["same"] for t in diff["tasks"]}
    assert same == {"analyze-sentiment": True, "check-sentiment": True, "create-jira-ticket": False}


def test_a_ledger_replay_without_a_recorded_answer_fails_without_calling(
    stack: Stack, unique_namespace: str, own_wire: OpenAIWire
) -> None:
    """Replayed on a revision whose prompt differs, the request has no recorded answer: the task fails, unsent."""
    _deploy_seed(stack, unique_namespace, own_wire)
    feedback = f"Great ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("POSITIVE"))
    original = _feedback(stack, unique_namespace, feedback)
    updated = stack.api.put(
        f"/flows/{unique_namespace}/{FLOW_ID}",
        content=seed_source(unique_namespace, own_wire, prompt="Judge the sentiment"),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert updated.status_code == 200 and updated.json()["revision"] == 2, updated.text

    replay = _replay(stack, original["id"], mode="ledger", revision="2")

    assert replay["state"]["current"] == "FAILED"
    assert len(own_wire.received()) == 1
    logs = stack.api.get(f"/executions/{replay['id']}/logs", params={"minLevel": "ERROR"}).json()
    assert any("recorded no successful answer to this request" in line["message"] for line in logs), logs


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "tape"}, "mode"),
        ({"mode": "ledger", "liveFrom": "no-such-task"}, "liveFrom"),
        ({"liveFrom": "analyze-sentiment"}, "liveFrom"),
    ],
)
def test_bad_ledger_options_are_a_422_naming_the_parameter(
    stack: Stack, unique_namespace: str, own_wire: OpenAIWire, params: dict[str, str], field: str
) -> None:
    _deploy_seed(stack, unique_namespace, own_wire)
    own_wire.script("Fine", Reply.text("POSITIVE"))
    original = _feedback(stack, unique_namespace, f"Fine ({uuid.uuid4().hex})")

    response = stack.api.post(f"/executions/{original['id']}/replay", params=params)

    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["_embedded"]["errors"]] == [field]


AGENT = agent_flow("agent-ledger", lookup_tool('at: "{{ now() }}"'))  # the time it ran: served, the original's


def test_an_agents_model_and_tool_calls_are_served_from_the_ledger(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    """The tool's output holds the time it ran: served, it is the original's; run again, it would differ."""
    deploy_flow(AGENT)
    question = f"where is order A-17? ({uuid.uuid4().hex})"
    script = openai_wire.script(
        question, Reply.tool_call("kestra_task_lookup", {"order_id": "A-17"}), Reply.text("It has shipped.")
    )
    original = stack.wait_for_state(stack.run(unique_namespace, "agent-ledger", question=question)["id"], timeout_s=60)
    assert original["state"]["current"] == "SUCCESS", original
    assert len(script.requests) == 2

    replay = _replay(stack, original["id"], mode="ledger")

    assert replay["state"]["current"] == "SUCCESS", replay
    assert len(script.requests) == 2 and _provider_calls(stack, replay["id"]) == 0
    [lookup] = task_runs(replay, "lookup")
    [original_lookup] = task_runs(original, "lookup")
    assert lookup["outputs"] == original_lookup["outputs"]
    diff = stack.api.get(f"/executions/{replay['id']}/diff/{original['id']}").json()
    assert diff["identical"] is True, diff
    assert [t["path"] for t in diff["tasks"]] == ["agent", "agent/lookup[0]"]


def test_chorus_replay_from_ledger_prints_the_diff(stack: Stack, unique_namespace: str, own_wire: OpenAIWire) -> None:
    _deploy_seed(stack, unique_namespace, own_wire)
    feedback = f"Nice ({uuid.uuid4().hex})"
    own_wire.script(feedback, Reply.text("POSITIVE"))
    original = _feedback(stack, unique_namespace, feedback)
    own_wire.stop()

    args = build_parser().parse_args(
        ["replay", original["id"], "--from-ledger", "--wait", "--expect-identical", "--url", _root(stack)]
    )
    printed = io.StringIO()
    code = client.run(args, {}, out=printed)

    out = printed.getvalue()
    assert code == 0, out
    assert f"replays {original['id']} from the ledger" in out
    assert "= analyze-sentiment SUCCESS" in out and "= check-sentiment SUCCESS" in out
    assert "0 provider call(s)) vs original" in out and out.rstrip().endswith("identical outputs")


def test_chorus_replay_live_from_needs_from_ledger(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code = chorus(["replay", "some-id", "--live-from", "t", "--url", _root(stack)])

    assert code != 0
    assert "--live-from: goes with --from-ledger" in capsys.readouterr().err


def _root(stack: Stack) -> str:
    return str(stack.api.base_url).rstrip("/")


def test_a_budget_overrun_fails_the_ledger_replay_as_it_failed_the_original(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, own_wire: OpenAIWire
) -> None:
    """The served answer costs nothing, yet the verdict is the original's: 985 tokens against maxTokens 800."""
    word = uuid.uuid4().hex
    deploy_flow(
        "id: budgeted\nnamespace: {ns}\ntasks:\n  - id: ask\n"
        "    type: io.kestra.plugin.ai.openai.ChatCompletion\n"
        f"    apiKey: \"{{{{ secret('OPENAI_API_KEY') }}}}\"\n    baseUrl: {own_wire.base_url}\n"
        "    model: gpt-4o-mini\n"
        f"    prompt: Summarise {word}\n    budget:\n      maxTokens: 800\n"
    )
    own_wire.script(word, Reply.text("a long answer", tokens_in=900, tokens_out=85))
    original = stack.wait_for_state(stack.run(unique_namespace, "budgeted")["id"], timeout_s=60)
    assert original["state"]["current"] == "FAILED", original
    own_wire.stop()

    replay = _replay(stack, original["id"], mode="ledger")

    assert replay["state"]["current"] == "FAILED", replay
    assert _provider_calls(stack, replay["id"]) == 0
    logs = stack.api.get(f"/executions/{replay['id']}/logs", params={"minLevel": "ERROR"}).json()
    assert any("LLM budget exceeded for this task run: 985 tokens (max 800)" in line["message"] for line in logs), logs
    assert stack.api.get(f"/executions/{replay['id']}/diff/{original['id']}").json()["identical"] is True


def test_an_agent_with_memory_replays_from_the_ledger_reading_the_memory_as_the_original_did(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    """The second run remembered the first; replayed after more turns were remembered, it still reads what it read."""
    deploy_flow(REMEMBERING)
    first, second = (f"ledger memory {n} ({uuid.uuid4().hex})" for n in ("one", "two"))
    openai_wire.script(first, Reply.text("noted one"))
    openai_wire.script(second, Reply.text("noted two"))
    runs = []
    for question in (first, second):
        created = stack.run(unique_namespace, "remembering", question=question, who="ledger")
        runs.append(stack.wait_for_state(created["id"], timeout_s=60))
    assert [r["state"]["current"] for r in runs] == ["SUCCESS", "SUCCESS"], runs
    calls_before = len(openai_wire.received())

    replays = [_replay(stack, run["id"], mode="ledger") for run in reversed(runs)]

    assert [r["state"]["current"] for r in replays] == ["SUCCESS", "SUCCESS"], replays
    assert len(openai_wire.received()) == calls_before
    for replay, run in zip(replays, reversed(runs), strict=True):
        assert stack.api.get(f"/executions/{replay['id']}/diff/{run['id']}").json()["identical"] is True


def test_an_agents_mcp_tool_call_is_served_from_the_ledger_without_starting_its_server(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    mcp_stdio_command: list[str],
) -> None:
    """The MCP call is the original's (no `agent.mcp_call` in the replay), and so is the tools listing: by the
    replay, the server's command cannot start any more (its script is gone), and the replay still succeeds."""
    interpreter, script = mcp_stdio_command
    own = Path(tempfile.mkdtemp(prefix="chorus-mcp-doomed-"))  # readable by the scripts user, as the fixture's
    own.chmod(0o755)
    doomed = own / Path(script).name
    shutil.copyfile(script, doomed)
    doomed.chmod(0o644)
    deploy_flow(_mcp_flow(mcp_tool("io.kestra.plugin.ai.tool.StdioMcpClient", command=[interpreter, str(doomed)])))
    question = f"where is order A-17? ({uuid.uuid4().hex})"
    script_calls = openai_wire.script(
        question, Reply.tool_call("order_status", {"order_id": "A-17"}), Reply.text("It has shipped.")
    )
    original = stack.wait_for_state(
        stack.run(unique_namespace, "agent-mcp-tools", question=question)["id"], timeout_s=90
    )
    assert original["state"]["current"] == "SUCCESS", original
    assert [e["action"] for e in _audit(stack, original["id"])].count("agent.mcp_call") == 1
    shutil.rmtree(own)

    replay = _replay(stack, original["id"], mode="ledger")
    live = stack.wait_for_state(stack.run(unique_namespace, "agent-mcp-tools", question=question)["id"], timeout_s=90)

    assert replay["state"]["current"] == "SUCCESS", replay
    assert len(script_calls.requests) == 2 and _provider_calls(stack, replay["id"]) == 0
    assert "agent.mcp_call" not in [e["action"] for e in _audit(stack, replay["id"])]
    [call_run] = task_runs(replay, "agent__mcp_tool_0")
    assert call_run["outputs"]["text"] == "order A-17 is shipped (Colissimo)"
    assert stack.api.get(f"/executions/{replay['id']}/diff/{original['id']}").json()["identical"] is True
    assert live["state"]["current"] == "FAILED", live  # a run that must list the tools live cannot start the server
    assert len(script_calls.requests) == 2


def test_a_subflows_model_call_is_served_from_the_original_subflows_ledger(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, own_wire: OpenAIWire
) -> None:
    word = uuid.uuid4().hex
    deploy_flow(
        "id: child-llm\nnamespace: {ns}\ntasks:\n  - id: ask\n"
        "    type: io.kestra.plugin.ai.openai.ChatCompletion\n"
        f"    apiKey: \"{{{{ secret('OPENAI_API_KEY') }}}}\"\n    baseUrl: {own_wire.base_url}\n"
        f"    model: gpt-4o-mini\n    prompt: Name a colour {word}\n"
        'outputs:\n  - id: colour\n    type: STRING\n    value: "{{ outputs.ask.choices[0].message.content }}"\n'
    )
    deploy_flow(
        "id: parent-llm\nnamespace: {ns}\ntasks:\n  - id: call\n    type: io.kestra.plugin.core.flow.Subflow\n"
        "    namespace: {ns}\n    flowId: child-llm\n    wait: true\n"
    )
    own_wire.script(word, Reply.text("teal"))
    original = stack.wait_for_state(stack.run(unique_namespace, "parent-llm")["id"], timeout_s=60)
    assert original["state"]["current"] == "SUCCESS", original
    own_wire.stop()

    replay = _replay(stack, original["id"], mode="ledger")

    assert replay["state"]["current"] == "SUCCESS", replay
    [call] = task_runs(replay, "call")
    assert call["outputs"]["outputs"] == {"colour": "teal"}
    child_id = call["outputs"]["executionId"]
    assert child_id != task_runs(original, "call")[0]["outputs"]["executionId"]
    assert _provider_calls(stack, child_id) == 0
    diff = stack.api.get(f"/executions/{replay['id']}/diff/{original['id']}").json()
    assert diff["identical"] is True, diff  # the child's id is compared by what it names: the subflow of `call`
