"""`chorus local`, the README's first command: one process starts everything and stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from orchestrator.embedded import free_port

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


def test_local_runs_the_example_and_sigterm_leaves_no_process_behind(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
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
        started = _descendants(local.pid)
        assert started  # the worker, its pool, the embedded servers

        local.send_signal(signal.SIGTERM)
        local.wait(60)

        left = [pid for pid in started if _alive(pid)]
        assert left == [], f"processes left behind after SIGTERM: {left}"
    finally:
        if local.poll() is None:
            local.kill()
