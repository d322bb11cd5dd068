"""A worker's stderr tells an execution's story: one line per claim, retry and end, with the run's ids."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.cli.processes import stop_process, worker_command
from tests.e2e.conftest import Stack

ONE_OK_ONE_RETRIED = """
id: logged-steps
namespace: {ns}
tasks:
  - id: fine
    type: io.kestra.plugin.core.debug.Return
    format: "fine"
    workerGroup:
      key: logged
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "always"
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 2
    workerGroup:
      key: logged
"""


def _task_run_lines(stderr: str, execution_id: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "orchestrator.observability.task_run_log:" in line and f"execution_id={execution_id}" in line
    ]


def test_a_workers_log_has_a_line_per_claim_retry_and_end_with_ids_attempt_and_duration(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, tmp_path: Path
) -> None:
    deploy_flow(ONE_OK_ONE_RETRIED)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            worker_command("logged", 1, stack.settings.worker_pool),
            env=stack.env,
            start_new_session=True,
            stderr=log_file,
        )
        try:
            execution_id = stack.run(unique_namespace, "logged-steps")["id"]
            done = stack.wait_for_state(execution_id, timeout_s=60)
        finally:
            stop_process(worker)

    assert done["state"]["current"] == "FAILED"
    lines = _task_run_lines(log_path.read_text(encoding="utf-8"), execution_id)
    ids = f"flow=logged-steps namespace={unique_namespace}"
    fine = [line for line in lines if "task_id=fine " in line]
    flaky = [line for line in lines if "task_id=flaky " in line]
    assert len(fine) == 2
    assert "→ fine attempt 1 claimed by worker:" in fine[0] and "action=task_run.claimed]" in fine[0]
    assert "← fine attempt 1 ● SUCCESS" in fine[1] and "action=task_run.ended]" in fine[1]
    actions = [line.rsplit("action=", 1)[1].rstrip("]") for line in flaky]
    assert actions == ["task_run.claimed", "task_run.retried", "task_run.claimed", "task_run.ended"]
    assert "flaky attempt 1 ● RETRYING, next attempt at " in flaky[1]
    assert "flaky attempt 2 claimed by worker:" in flaky[2]
    assert " WARNING " in flaky[3] and "← flaky attempt 2 ● FAILED" in flaky[3]
    for line in lines:
        assert re.search(r"\s\d+\.\d\ds [→←↻] ", line), line  # the duration leads, as in arq's log
        assert f"execution_id={execution_id} task_run_id=" in line and ids in line, line
