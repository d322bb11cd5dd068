"""An undumpable process keeps its environment from the other processes of its user (a worker that is not root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "s3ntinel-dumpable-41d2"

# The "worker": holds a secret in its start-up environment, hardens itself (or not), then runs a "script" of
# its own uid that reads the worker's environ.
_WORKER = """
import subprocess, sys
from orchestrator.hardening import forbid_inspection
if sys.argv[1] == "harden":
    assert forbid_inspection()
read = subprocess.run(["/bin/sh", "-c", "cat /proc/$PPID/environ"], capture_output=True, env={"PATH": "/bin:/usr/bin"})
sys.stdout.buffer.write(read.stdout + read.stderr)
"""


def _worker(mode: str) -> str:
    # As root, the same-uid case needs another user: `nobody` runs the system interpreter (the venv's may
    # live under /root, out of its reach) with only this checkout on its path (hardening is stdlib-only).
    # The checkout itself may sit in a private directory (`mktemp -d`) nobody cannot enter: the module is copied
    # into a directory of the test's own that it can read.
    switch: dict[str, Any] = {}
    python = sys.executable
    path = str(ROOT)
    copy = None
    if os.geteuid() == 0:
        switch = {"user": "nobody", "group": "nogroup", "extra_groups": []}
        python = "/usr/bin/python3"
        copy = Path(tempfile.mkdtemp(prefix="chorus-hardening-", dir="/var/tmp"))
        copy.chmod(0o755)
        (copy / "orchestrator").mkdir(mode=0o755)
        (copy / "orchestrator" / "__init__.py").write_text("")
        shutil.copy(ROOT / "orchestrator" / "hardening.py", copy / "orchestrator" / "hardening.py")
        for file in (copy / "orchestrator").iterdir():
            file.chmod(0o644)
        path = str(copy)
    try:
        done = subprocess.run(
            [python, "-c", _WORKER, mode],
            env={"PATH": "/bin:/usr/bin", "PYTHONPATH": path, "CHORUS_ADMIN_PASSWORD": SENTINEL},
            cwd="/", capture_output=True, text=True, timeout=30, check=True, **switch,
        )  # fmt: skip
    finally:
        if copy is not None:
            shutil.rmtree(copy)
    return str(done.stdout)


def test_a_same_user_process_reads_an_unhardened_process_environment() -> None:
    assert SENTINEL in _worker("plain")  # the premise: without the flag the script reads it


def test_a_same_user_process_cannot_read_a_hardened_process_environment() -> None:
    out = _worker("harden")

    assert SENTINEL not in out
    assert "Permission denied" in out
