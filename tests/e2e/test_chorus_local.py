"""`chorus local`, the README's first command: one process starts everything and stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from orchestrator.cli.embedded import free_port
from tests.fakes.fixtures import secret_env
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire, Reply

EXAMPLES = Path(__file__).parents[2] / "examples"


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            for child in task.read_text().split():
                found.add(int(child))
                pending.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _article_run(base: str, openai: OpenAIWire, verdict: str) -> tuple[str, dict[str, object]]:
    """Trigger the article's flow through its own webhook with the model answering `verdict`."""
    feedback = f"{verdict.lower()} feedback {uuid.uuid4().hex}"
    openai.script(feedback, Reply.text(verdict, tokens_in=40, tokens_out=1))
    hook = f"{base}/executions/webhook/company.support/customer-feedback-analysis/feedback-7c1e"
    response = httpx.post(hook, json={"feedback": feedback}, timeout=30)
    assert response.status_code == 200, response.text
    execution_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        execution = httpx.get(f"{base}/executions/{execution_id}", timeout=10).json()
        if execution["state"]["current"] in ("SUCCESS", "FAILED", "KILLED", "WARNING"):
            return feedback, execution
        time.sleep(0.3)
    raise AssertionError(f"{execution_id} did not end")


def test_local_runs_the_examples_and_sigterm_leaves_no_process_behind(
    tmp_path: Path, openai_wire: OpenAIWire, jira_server: JiraServer
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    # The article's flow, deployed unchanged from examples/, reads its model and Jira from secrets.
    env.update(secret_env(openai_wire, jira_server))
    local = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "local", "--port", str(port), "--data-dir", str(tmp_path),
         "--flows", str(EXAMPLES)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1/main"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/flows/search", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert local.poll() is None, "chorus local exited while starting"
            time.sleep(0.5)
        response = httpx.post(
            f"{base}/executions/company.team/hello", params={"wait": "true"}, files={"name": (None, "Ada")}, timeout=60
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"]["current"] == "SUCCESS"

        # The article's customer-feedback flow, as in cluster mode (tests/e2e/test_article_flow.py).
        feedback, negative = _article_run(base, openai_wire, "NEGATIVE")
        assert negative["state"]["current"] == "SUCCESS"
        assert [t["taskId"] for t in negative["taskRunList"]] == [  # type: ignore[union-attr]
            "analyze-sentiment", "check-sentiment", "create-jira-ticket"
        ]  # fmt: skip
        [issue] = jira_server.issues_mentioning(feedback)
        assert issue.fields["description"] == f"Feedback: {feedback}"
        feedback, positive = _article_run(base, openai_wire, "POSITIVE")
        assert positive["state"]["current"] == "SUCCESS" and len(positive["taskRunList"]) == 2  # type: ignore[arg-type]
        assert jira_server.issues_mentioning(feedback) == []

        started = _descendants(local.pid)
        assert started  # the worker, its pool, the embedded servers

        local.send_signal(signal.SIGTERM)
        local.wait(60)

        left = [pid for pid in started if _alive(pid)]
        assert left == [], f"processes left behind after SIGTERM: {left}"
    finally:
        if local.poll() is None:
            local.kill()
