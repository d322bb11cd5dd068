"""Resource limits of script tasks: a script is a flow author's code on a shared worker, so what it prints, the
memory it maps, the processes it starts and the files it writes are bounded by the worker, not by its good will.

The stack's worker runs as root (this machine's tests do), so its scripts run as the scripts user and get the
per-user process limit too. Defaults: 10 MiB of output, 8 GiB of address space, 512 processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from workers.sandbox import ScriptLimits

pytestmark = pytest.mark.security

SCRIPT = """
id: {id}
namespace: {ns}
tasks:
  - id: script
    type: io.kestra.plugin.scripts.python.Script
    timeout: PT60S
    script: |
{body}
"""


def _run_script(stack: Stack, namespace: str, flow_id: str, body: str) -> tuple[dict[str, object], str]:
    indented = "\n".join("      " + line for line in body.strip().splitlines())
    stack.deploy(SCRIPT.format(id=flow_id, ns=namespace, body=indented))
    ended = stack.wait_for_state(stack.run(namespace, flow_id)["id"], timeout_s=90)
    logs = stack.api.get(f"/logs/{ended['id']}").json()
    return ended, "\n".join(line["message"] for line in logs)


def test_a_script_printing_without_end_is_stopped_at_the_output_limit(stack: Stack, unique_namespace: str) -> None:
    # Each line used to be kept in the worker's memory and stored as a log row until the timeout: `yes` for a
    # minute is gigabytes.
    started = time.monotonic()
    ended, logs = _run_script(
        stack, unique_namespace, "flood", "import sys\nwhile True:\n    sys.stdout.write('x' * 1000 + '\\n')"
    )

    assert ended["state"]["current"] == "FAILED"
    assert time.monotonic() - started < 50  # stopped by the limit, not by the 60 s timeout
    assert "CHORUS_SCRIPT_MAX_OUTPUT_BYTES" in logs
    assert len(logs) <= 10 * 1024 * 1024 + 10_000  # the stored lines stay within the limit


def test_a_script_cannot_map_more_memory_than_the_limit(stack: Stack, unique_namespace: str) -> None:
    # An untouched private mapping costs no RAM, so the probe is harmless where the limit is missing.
    ended, logs = _run_script(
        stack,
        unique_namespace,
        "memory",
        "import mmap\ntry:\n    mmap.mmap(-1, 12 << 30)\n    print('mapped 12 GiB')\n"
        "except OSError as e:\n    print('refused:', e)",
    )

    assert ended["state"]["current"] == "SUCCESS", logs
    assert "refused: [Errno 12] Cannot allocate memory" in logs
    assert "mapped 12 GiB" not in logs


def test_a_fork_bomb_stops_at_the_process_limit(stack: Stack, unique_namespace: str) -> None:
    ended, logs = _run_script(
        stack,
        unique_namespace,
        "forks",
        "import subprocess\nstarted, refused = [], None\nfor _ in range(700):\n"
        "    try:\n        started.append(subprocess.Popen(['sleep', '30']))\n"
        "    except OSError as e:\n        refused = e\n        break\n"
        "print('started', len(started), 'refused', refused)\nfor p in started:\n    p.kill()",
    )

    assert ended["state"]["current"] == "SUCCESS", logs
    assert "Resource temporarily unavailable" in logs, logs
    count = int(logs.split("started ", 1)[1].split()[0])
    assert count < 512


def _limited(limits: ScriptLimits, command: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, cwd=cwd, preexec_fn=limits.preexec(None), capture_output=True, timeout=30)


def test_a_file_larger_than_the_limit_cannot_be_written(tmp_path: Path) -> None:
    written = _limited(ScriptLimits(file_bytes=1 << 20), ["/bin/sh", "-c", "head -c 3000000 /dev/zero > big"], tmp_path)

    assert written.returncode != 0
    assert (tmp_path / "big").stat().st_size == 1 << 20


def test_a_cpu_time_limit_stops_a_busy_loop(tmp_path: Path) -> None:
    started = time.monotonic()
    spun = _limited(ScriptLimits(cpu_s=1), [sys.executable, "-c", "while True: pass"], tmp_path)

    assert spun.returncode < 0  # killed by a signal (SIGXCPU, then SIGKILL at the hard limit)
    assert time.monotonic() - started < 20


def test_a_zero_limit_leaves_the_workers_own_limit(tmp_path: Path) -> None:
    command = ["/bin/sh", "-c", "ulimit -f; ulimit -d; ulimit -t"]
    inherited = subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=30, check=True)

    assert _limited(ScriptLimits(), command, tmp_path).stdout == inherited.stdout
