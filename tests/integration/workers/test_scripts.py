"""Script tasks as real subprocesses: outputs protocol, logs, exit codes, timeouts that kill the tree, files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome
from tests.integration.workers.conftest import Runner, SetSecrets, one_task_flow
from workers.storage import local_path


def _task(kind: str, body: str) -> str:
    return one_task_flow(f"    type: io.kestra.plugin.scripts.{kind}\n{body}")


def _messages(outcome: TaskOutcome, level: str | None = None) -> list[str]:
    return [r.message for r in outcome.logs if level is None or r.level == level]


def test_a_python_script_sets_outputs_through_the_line_protocol(run_task: Runner) -> None:
    body = (
        "    script: |\n"
        "      import json\n"
        "      print('hello from python')\n"
        "      print('::' + json.dumps({'outputs': {'n': 3, 'who': 'Ada'}}) + '::')\n"
    )

    outcome = run_task(_task("python.Script", body), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs == {"exitCode": 0, "vars": {"n": 3, "who": "Ada"}}
    assert "hello from python" in _messages(outcome, "INFO")
    assert not any("outputs" in m for m in _messages(outcome))


def test_shell_commands_run_after_before_commands_with_env(run_task: Runner) -> None:
    body = (
        "    beforeCommands:\n      - export GREETING=hi\n"
        '    env:\n      NAME: "{{ flow.id }}"\n'
        '    commands:\n      - echo "$GREETING $NAME"\n      - echo \'::{"outputs":{"done":true}}::\''
    )

    outcome = run_task(_task("shell.Commands", body), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert "hi t" in _messages(outcome, "INFO")
    assert outcome.outputs is not None and outcome.outputs["vars"] == {"done": True}


def test_a_non_zero_exit_code_fails_and_stderr_is_logged(run_task: Runner) -> None:
    body = "    commands:\n      - echo 'going wrong' >&2\n      - exit 3"

    outcome = run_task(_task("shell.Commands", body), "t")

    assert outcome.state is State.FAILED
    assert outcome.error == "Command failed with exit code 3"
    assert "going wrong" in _messages(outcome, "WARN")


def test_fail_fast_stops_at_the_first_failing_command(run_task: Runner) -> None:
    body = "    commands:\n      - 'false'\n      - echo never"

    outcome = run_task(_task("shell.Commands", body), "t")

    assert outcome.state is State.FAILED and "never" not in _messages(outcome)


def test_logs_sent_through_the_protocol_keep_their_level(run_task: Runner) -> None:
    body = """    commands:\n      - echo '::{"logs":[{"level":"ERROR","message":"disk full"}]}::'"""

    outcome = run_task(_task("shell.Commands", body), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert _messages(outcome, "ERROR") == ["disk full"]


def test_a_timeout_kills_the_whole_process_group(run_task: Runner) -> None:
    # The pid goes through the log: a script may run as another user, who cannot write into pytest's tmp_path.
    body = "    timeout: PT0.5S\n    commands:\n      - sleep 300 &\n      - echo child=$!\n      - wait"
    started = time.monotonic()

    outcome = run_task(_task("shell.Commands", body), "t")

    assert outcome.state is State.FAILED and outcome.retryable is True
    assert outcome.error is not None and "timed out" in outcome.error
    assert time.monotonic() - started < 10
    child = next(m for m in _messages(outcome) if m.startswith("child="))
    assert not _alive(int(child.removeprefix("child=")))


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie is dead, merely not yet reaped by its new parent


def test_input_files_go_in_and_output_files_come_out_as_storage_uris(run_task: Runner, worker_engine: Engine) -> None:
    body = (
        "    inputFiles:\n"
        "      main.py: |\n"
        "        from pathlib import Path\n"
        "        Path('out').mkdir()\n"
        "        Path('out/result.txt').write_text(Path('data/in.txt').read_text().upper())\n"
        "      data/in.txt: quiet words\n"
        "    outputFiles:\n      - 'out/*.txt'\n"
        "    commands:\n      - python main.py"
    )

    outcome = run_task(_task("python.Commands", body), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs is not None
    uri = outcome.outputs["outputFiles"]["out/result.txt"]
    assert uri.startswith("kestra:///tests/workers/t/executions/") and uri.endswith("/out/result.txt")
    assert local_path(worker_engine.settings.data_dir, uri).read_text() == "QUIET WORDS"


def test_a_docker_task_runner_is_refused_with_a_clear_message(run_task: Runner) -> None:
    body = (
        "    taskRunner:\n      type: io.kestra.plugin.scripts.runner.docker.Docker\n"
        "    containerImage: python:3.11\n    script: print(1)"
    )

    outcome = run_task(_task("python.Script", body), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "Docker task runners are not available" in outcome.error


def test_secrets_are_masked_in_script_output_and_the_worker_env_does_not_leak(
    run_task: Runner, secrets: SetSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets(API_TOKEN="tok-5f2e9a77")
    monkeypatch.setenv("CHORUS_LEAK_CANARY", "canary")
    body = "    env:\n      TOKEN: \"{{ secret('API_TOKEN') }}\"\n"
    body += '    commands:\n      - echo "token=$TOKEN"\n      - env'

    outcome = run_task(_task("shell.Commands", body), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    messages = _messages(outcome)
    assert "token=******" in messages
    assert not any("tok-5f2e9a77" in m or "SECRET_" in m or "CHORUS_LEAK_CANARY" in m for m in messages)
