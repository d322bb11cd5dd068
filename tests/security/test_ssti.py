"""Template injection through every expression position of a running flow: task properties, flow variables,
inputs, labels. Nothing executes, nothing of Python's internals, the settings or the environment comes out
beyond the `envs` allow-list; each attempt either fails as an expression error or stays inert text."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.unit.core.test_expressions_sandbox import INJECTIONS

pytestmark = pytest.mark.security

#: What would show that an injection reached Python objects, settings or the process environment.
LEAK_MARKERS = ("<class", "<module", "<function", "<built-in", "<bound method", "postgresql", "redis://", "SECRET_")
#: Inputs and labels go through the API and are stored: a few of each kind are enough to show they are not rendered.
THROUGH_INPUTS = INJECTIONS[::5]


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid double-quoted YAML scalar


def _injection_flow(namespace: str, refused: frozenset[int] = frozenset()) -> str:
    kept = [(i, t) for i, t in enumerate(INJECTIONS) if i not in refused]
    variables = "".join(f"  v{i}: {_quoted(t)}\n" for i, t in kept)
    tasks = []
    for i, template in kept:
        tasks.append(f"  - id: prop{i}\n    type: io.kestra.plugin.core.debug.Return\n    allowFailure: true\n"
                     f"    format: {_quoted(template)}\n")  # fmt: skip
        tasks.append(f"  - id: var{i}\n    type: io.kestra.plugin.core.debug.Return\n    allowFailure: true\n"
                     f"    format: \"{{{{ vars.v{i} }}}}\"\n")  # fmt: skip
        tasks.append(f"  - id: label{i}\n    type: io.kestra.plugin.core.execution.Labels\n    allowFailure: true\n"
                     f"    labels:\n      probe{i}: {_quoted(template)}\n")  # fmt: skip
    tasks.append('  - id: envs\n    type: io.kestra.plugin.core.debug.Return\n    format: "{{ envs }}"\n')
    return f"id: injections\nnamespace: {namespace}\nvariables:\n{variables}tasks:\n{''.join(tasks)}"


ECHO = """
id: echo
namespace: {ns}
inputs:
  - id: text
    type: STRING
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.text }}"
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.text }}"
"""


def _assert_no_leak(text: str) -> None:
    assert [m for m in LEAK_MARKERS if m in text] == []
    assert os.environ.get("PATH", "") not in text
    assert "chorus_" not in text.lower().replace("chorus_e2e", "")  # no CHORUS_* setting (the allow-listed one aside)


def test_injections_in_properties_variables_and_labels_fail_or_stay_inert(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # Injections naming a function, filter or test the sandbox does not have are refused at deploy (a failure,
    # with the YAML line); the rest are deployed and run.
    first = stack.api.post(
        "/flows", content=_injection_flow(unique_namespace), headers={"Content-Type": "application/x-yaml"}
    )
    refused: set[int] = set()
    if first.status_code == 422:
        for error in first.json()["_embedded"]["errors"]:
            assert error["message"].startswith("unknown "), error
            task = re.match(r"tasks\[(\d+)\]", error["path"])
            variable = re.match(r"variables\.v(\d+)", error["path"])
            assert task or variable, error
            refused.add(int(task.group(1)) // 3 if task else int(variable.group(1)))  # type: ignore[union-attr]
    else:
        assert first.status_code == 200, first.text
    deploy_flow(_injection_flow("{ns}", frozenset(refused)))
    done = stack.wait_for_state(stack.run(unique_namespace, "injections")["id"], timeout_s=120)

    runs = {t["taskId"]: t for t in done["taskRunList"]}
    tried = len(refused) * 3
    for i, template in enumerate(INJECTIONS):
        if i in refused:
            continue
        for position in ("prop", "var", "label"):
            run = runs[f"{position}{i}"]
            tried += 1
            value = (run.get("outputs") or {}).get("value")
            # An allowed failure (WARNING) is the expression error; a success must have left the text as written.
            failed = run["state"]["current"] == "WARNING"
            assert failed or (position != "prop" and value in (None, template)), (position, template, value)
    envs = runs["envs"]["outputs"]["value"]
    assert "chorus_e2e" in envs and "from the environment" in envs  # the allow-list (ENV_ prefix) only
    logs = stack.api.get(f"/logs/{done['id']}").text
    for text in (json.dumps(done), logs):
        _assert_no_leak(text)
    at_deploy = len(refused) * 3
    print(f"SSTI: {tried} injections tried in properties, variables and labels ({at_deploy} refused at deploy)")


def test_injections_in_inputs_and_submitted_labels_are_never_rendered(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ECHO)
    for template in THROUGH_INPUTS:
        response = stack.api.post(
            f"/executions/{unique_namespace}/echo",
            files={"text": (None, template)},
            params={"labels": f"probe:{template}"},
        )
        assert response.status_code in (200, 422), response.text  # a label may be refused as invalid: a 4xx
        if response.status_code == 422:
            response = stack.api.post(f"/executions/{unique_namespace}/echo", files={"text": (None, template)})
        done = stack.wait_for_state(response.json()["id"], timeout_s=30)

        assert done["state"]["current"] == "SUCCESS"
        runs = {t["taskId"]: t for t in done["taskRunList"]}
        assert runs["echo"]["outputs"]["value"] == template  # data, not a template: rendered once, as written
        _assert_no_leak(json.dumps(done) + stack.api.get(f"/logs/{done['id']}").text)
    print(f"SSTI: {len(THROUGH_INPUTS)} injections tried as inputs and labels; 0 evaluated")


WEBHOOK_RENDER = """
id: greet
namespace: {ns}
variables:
  greeting: "Hello {{ trigger.body.name }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: greet-7f3a
    returnOutputs: true
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{ render(vars.greeting) }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ render(vars.greeting) }}"
"""

#: What a caller with no account posts as `name`, hoping render() evaluates it (issue 16, critical).
RE_RENDERED = [
    "{{ {} | jq('env') }}",
    "{{ {} | jq('$ENV') }}",
    "{{ secret('OPENAI_API_KEY') }}",
    "{{ envs }}",
    "{{ 7 * 191 }}",
]


@pytest.mark.parametrize("payload", RE_RENDERED)
def test_a_webhook_caller_without_an_account_cannot_have_its_text_rendered(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, payload: str
) -> None:
    deploy_flow(WEBHOOK_RENDER)
    hook = f"{stack.api.base_url}executions/webhook/{unique_namespace}/greet/greet-7f3a"

    response = httpx.post(hook, json={"name": payload}, timeout=60)  # no credentials, as any caller

    assert response.status_code == 200, response.text
    assert response.json() == {"greeting": f"Hello {payload}"}
    assert "1337" not in response.text
    _assert_no_leak(response.text)
    for name, value in stack.env.items():
        if name.startswith(("SECRET_", "CHORUS_DATABASE")):
            assert value not in response.text
