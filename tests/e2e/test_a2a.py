"""The A2A endpoints, driven over HTTP (httpx) as an A2A client would: cards, message/send, tasks/get,
message/stream, tasks/cancel, and denied calls."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.e2e.flow_tools_server import ToolsServer, tools_server
from tests.harness.stack import Stack

__all__ = ["tools_server"]  # the fixture, used by name


def _rpc(server: ToolsServer, token: str, method: str, params: dict[str, Any], path: str = "/a2a") -> Any:
    body = {"jsonrpc": "2.0", "id": "r1", "method": method, "params": params}
    response = httpx.post(f"{server.base}{path}", json=body, headers=server.headers(token), timeout=60)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["jsonrpc"] == "2.0" and reply["id"] == "r1"
    return reply


def _message(*parts: dict[str, Any], skill: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"kind": "message", "role": "user", "messageId": "m1", "parts": list(parts)}
    if skill:
        message["metadata"] = {"skillId": skill}
    return {"message": message}


def test_the_server_card_lists_the_callers_skills_and_anonymous_callers_see_none(tools_server: ToolsServer) -> None:
    anonymous = httpx.get(f"{tools_server.base}/.well-known/agent-card.json").json()
    card = httpx.get(
        f"{tools_server.base}/.well-known/agent-card.json", headers=tools_server.headers(tools_server.operator)
    ).json()

    assert anonymous["skills"] == [] and anonymous["supportsAuthenticatedExtendedCard"] is True
    extended = _rpc(tools_server, tools_server.operator, "agent/getAuthenticatedExtendedCard", {})["result"]
    assert f"{tools_server.namespace}.greet" in {s["id"] for s in extended["skills"]}
    assert extended["url"] == f"{tools_server.base}/a2a"
    assert card["protocolVersion"] == "0.3.0" and card["capabilities"]["streaming"] is True
    assert card["url"].endswith("/a2a") and card["securitySchemes"]["bearer"]["scheme"] == "bearer"
    skills = {s["id"]: s for s in card["skills"]}
    assert skills[f"{tools_server.namespace}.greet"]["description"] == "Returns a greeting for the given name."
    assert f"{tools_server.namespace}.plain" not in skills


def test_a_flow_card_is_served_to_who_may_run_it_only(tools_server: ToolsServer) -> None:
    path = f"{tools_server.base}/a2a/{tools_server.namespace}/greet/.well-known/agent-card.json"
    card = httpx.get(path, headers=tools_server.headers(tools_server.operator))
    denied = httpx.get(path, headers=tools_server.headers(tools_server.viewer))
    hidden = httpx.get(path, headers=tools_server.headers(tools_server.stranger))

    assert card.status_code == 200 and card.json()["url"].endswith(f"/a2a/{tools_server.namespace}/greet")
    assert [s["id"] for s in card.json()["skills"]] == [f"{tools_server.namespace}.greet"]
    assert (denied.status_code, hidden.status_code) == (403, 404)


def test_message_send_runs_the_flow_and_tasks_get_returns_it(tools_server: ToolsServer, stack: Stack) -> None:
    params = _message({"kind": "data", "data": {"who": "Grace", "times": 2}}, skill=f"{tools_server.namespace}.greet")

    task = _rpc(tools_server, tools_server.operator, "message/send", params)["result"]
    again = _rpc(tools_server, tools_server.viewer, "tasks/get", {"id": task["id"]})["result"]

    assert task["kind"] == "task" and task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"] == [{"kind": "data", "data": {"greeting": "Hello Grace x2"}}]
    assert again["id"] == task["id"] and again["contextId"] == task["contextId"]
    assert again["status"]["state"] == "completed"
    execution = stack.api.get(f"/executions/{task['id']}").json()  # task id = execution id
    assert {"key": "system.from", "value": "a2a"} in execution["labels"]


def test_a_text_part_fills_the_flows_only_text_input_on_the_flow_endpoint(tools_server: ToolsServer) -> None:
    params = _message({"kind": "text", "text": "Linus"})
    task = _rpc(tools_server, tools_server.operator, "message/send", params, f"/a2a/{tools_server.namespace}/greet")
    assert task["result"]["artifacts"][0]["parts"][0]["data"] == {"greeting": "Hello Linus x1"}


def test_message_stream_sends_the_task_then_status_updates_until_final(tools_server: ToolsServer) -> None:
    body = {"jsonrpc": "2.0", "id": 7, "method": "message/stream"}
    body["params"] = _message({"kind": "data", "data": {"who": "Ken"}}, skill=f"{tools_server.namespace}.greet")
    events = []
    headers = tools_server.headers(tools_server.operator)
    with httpx.stream("POST", f"{tools_server.base}/a2a", json=body, headers=headers, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))

    results = [e["result"] for e in events]
    assert all(e["id"] == 7 for e in events)
    assert results[0]["kind"] == "task" and results[0]["status"]["state"] == "working"
    assert results[-1]["kind"] == "status-update" and results[-1]["final"] is True
    assert results[-1]["status"]["state"] == "completed"
    artifacts = [r for r in results if r["kind"] == "artifact-update"]
    assert artifacts[0]["artifact"]["parts"][0]["data"] == {"greeting": "Hello Ken x1"}


def test_tasks_cancel_kills_the_execution(tools_server: ToolsServer, stack: Stack) -> None:
    params = _message(skill=f"{tools_server.namespace}.slow")
    params["configuration"] = {"blocking": False}
    task = _rpc(tools_server, tools_server.operator, "message/send", params)["result"]
    assert task["status"]["state"] == "working"

    denied = _rpc(tools_server, tools_server.viewer, "tasks/cancel", {"id": task["id"]})
    cancelled = _rpc(tools_server, tools_server.operator, "tasks/cancel", {"id": task["id"]})["result"]
    twice = _rpc(tools_server, tools_server.operator, "tasks/cancel", {"id": task["id"]})

    assert denied["error"]["code"] == -32040
    assert cancelled["status"]["state"] == "canceled"
    assert stack.wait_for_state(task["id"], timeout_s=10)["state"]["current"] == "KILLED"
    assert twice["error"]["code"] == -32002


def test_a_token_without_the_run_permission_is_denied_and_nothing_runs(tools_server: ToolsServer, stack: Stack) -> None:
    before = stack.api.get("/executions/search", params={"namespace": tools_server.namespace}).json()["total"]
    params = _message({"kind": "data", "data": {"who": "Eve"}}, skill=f"{tools_server.namespace}.greet")

    denied = _rpc(tools_server, tools_server.viewer, "message/send", params)["error"]
    hidden = _rpc(tools_server, tools_server.stranger, "message/send", params)["error"]
    unauthenticated = httpx.post(f"{tools_server.base}/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get"})

    assert denied["code"] == -32040 and "execution.run" in denied["message"]
    audit = stack.api.get("/audit", params={"action": "a2a.message/send", "namespace": tools_server.namespace}).json()
    events = {(e["actor"], e["subject"]) for e in audit["results"]}
    assert (f"a2a:viewer-{tools_server.tag}@x/agent", f"{tools_server.namespace}.greet") in events, events
    assert hidden["code"] == -32602 and hidden["data"] == {"field": "metadata.skillId"}
    assert unauthenticated.status_code == 401
    time.sleep(0.2)
    assert stack.api.get("/executions/search", params={"namespace": tools_server.namespace}).json()["total"] == before


def test_protocol_errors_name_what_is_wrong(tools_server: ToolsServer) -> None:
    token = tools_server.operator
    greet = f"{tools_server.namespace}.greet"
    bad_input = _rpc(tools_server, token, "message/send", _message({"kind": "data", "data": {"times": 1}}, skill=greet))
    no_skill = _rpc(tools_server, token, "message/send", _message({"kind": "text", "text": "hi"}))
    no_method = _rpc(tools_server, token, "tasks/resubscribe", {"id": "x"})
    missing = _rpc(tools_server, token, "tasks/get", {"id": "0000000000000000000000"})
    no_message = _rpc(tools_server, token, "message/send", {})
    not_json = httpx.post(f"{tools_server.base}/a2a", content=b"{", headers=tools_server.headers(token)).json()

    assert bad_input["error"]["code"] == -32602 and bad_input["error"]["data"] == {"field": "inputs.who"}
    assert no_skill["error"]["data"] == {"field": "metadata.skillId"}
    assert no_method["error"]["code"] == -32601
    assert missing["error"]["code"] == -32001
    assert no_message["error"]["code"] == -32602 and no_message["error"]["data"] == {"field": "message"}
    assert not_json["error"]["code"] == -32700


def test_a_paused_execution_is_an_input_required_task(tools_server: ToolsServer, stack: Stack) -> None:
    params = _message(skill=f"{tools_server.namespace}.approval")
    task = _rpc(tools_server, tools_server.operator, "message/send", params)["result"]

    assert task["status"]["state"] == "input-required" and task["metadata"]["chorus.io/state"] == "PAUSED"
    assert stack.api.delete(f"/executions/{task['id']}/kill").status_code < 300
