"""`chorus run` and `chorus executions`, run as a person would (a subprocess) against the e2e stack's server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.cli.exit_codes import EXIT_EXECUTION_FAILED, EXIT_OK
from tests.e2e.conftest import Stack

FAILING = """
id: failing
namespace: {ns}
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: broken
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: the disk is on fire
"""

GREETING = """
id: greeting
namespace: {ns}
inputs:
  - id: name
    type: STRING
  - id: letter
    type: FILE
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.name }} ({{ read(inputs.letter) }})"
"""


def _chorus(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in stack.env.items() if k not in ("CHORUS_URL", "CHORUS_TOKEN", "CHORUS_CONFIG")}
    env["CHORUS_URL"] = f"http://127.0.0.1:{stack.settings.port}"
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_run_follow_of_a_failing_flow_exits_non_zero_naming_the_failing_task(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FAILING)

    done = _chorus(stack, "run", unique_namespace, "failing", "--follow")

    assert done.returncode == EXIT_EXECUTION_FAILED, done.stdout + done.stderr
    # Not a TTY: plain lines, one per change, then the end and the failing task with its error.
    assert " greet SUCCESS\n" in done.stdout
    assert " broken FAILED\n" in done.stdout
    assert "failed task: broken: the disk is on fire\n" in done.stdout
    assert "\x1b[" not in done.stdout


def test_run_wait_with_an_input_and_a_file_exits_zero_and_logs_and_list_show_it(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, tmp_path: Path
) -> None:
    deploy_flow(GREETING)
    letter = tmp_path / "letter.txt"
    letter.write_text("a file input")

    done = _chorus(
        stack, "run", unique_namespace, "greeting", "--input", "name=Ada", "--file", f"letter={letter}", "--wait"
    )

    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    execution_id = done.stdout.split()[1]
    assert f"execution {execution_id} SUCCESS\n" in done.stdout
    runs = stack.api.get(f"/executions/{execution_id}").json()["taskRunList"]
    assert runs[0]["outputs"] == {"value": "hello Ada (a file input)"}
    listed = _chorus(stack, "executions", "list", "--namespace", unique_namespace)
    assert listed.returncode == EXIT_OK, listed.stderr
    assert execution_id in listed.stdout and "SUCCESS" in listed.stdout


def test_executions_logs_prints_the_tasks_lines(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FAILING)
    execution_id = stack.wait_for_state(stack.run(unique_namespace, "failing")["id"])["id"]

    done = _chorus(stack, "executions", "logs", execution_id, "--level", "ERROR")

    assert done.returncode == EXIT_OK, done.stderr
    assert "ERROR broken the disk is on fire" in done.stdout
    assert "hello" not in done.stdout


def test_executions_commands_report_an_unknown_execution_and_a_missing_input(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(GREETING)

    unknown = _chorus(stack, "executions", "follow", "no-such-execution")
    missing = _chorus(stack, "run", unique_namespace, "greeting", "--input", "name=Ada", "--wait")
    malformed = _chorus(stack, "run", unique_namespace, "greeting", "--input", "name")

    assert unknown.returncode == 3 and "404" in unknown.stderr
    assert missing.returncode == 3 and "letter" in missing.stderr
    assert malformed.returncode == 2 and "'name' is not NAME=VALUE" in malformed.stderr


def test_restart_then_follow_names_the_state(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FAILING)
    execution_id = stack.wait_for_state(stack.run(unique_namespace, "failing")["id"])["id"]

    restarted = _chorus(stack, "executions", "restart", execution_id)
    followed = _chorus(stack, "executions", "follow", execution_id)

    assert restarted.returncode == EXIT_OK, restarted.stderr
    assert f"execution {execution_id} restart: now" in restarted.stdout
    assert followed.returncode == EXIT_EXECUTION_FAILED, followed.stdout + followed.stderr
    assert "failed task: broken" in followed.stdout
