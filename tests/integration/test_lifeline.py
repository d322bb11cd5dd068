"""The lifeline: a process watching it dies, with what it started, when the lifeline's holder is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from orchestrator.lifeline import open_lifeline

REPO_ROOT = Path(__file__).resolve().parents[2]

# A worker-like child: a group of its own, a pool-like forked child, and a command in a session of its own
# (as the scripts pool starts them), all below it.
CHILD = """
import os, subprocess, sys, time
from orchestrator.lifeline import watch_lifeline
fd = int(sys.argv[1])
if os.fork() == 0:
    time.sleep(120)
    os._exit(0)
command = subprocess.Popen(["sleep", "120"], start_new_session=True)
watch_lifeline(fd, kill_group=True)
print(command.pid, flush=True)
time.sleep(120)
"""


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_closing_the_lifeline_kills_the_watcher_its_group_and_commands_in_sessions_of_their_own() -> None:
    child_end, our_end = open_lifeline()
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(child_end)], pass_fds=(child_end,), start_new_session=True,
        env={**os.environ, "PYTHONPATH": python_path}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(child_end)
    try:
        assert child.stdout is not None
        command_pid = int(child.stdout.readline())
        family = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
        assert command_pid in {p.pid for p in family} and len(family) == 3

        os.close(our_end)  # what the kernel does when the holder dies, however it dies
        child.wait(10)

        deadline = time.monotonic() + 5
        while any(_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p.pid for p in family if _alive(p)] == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_lifeline_end_is_not_inherited_by_other_children() -> None:
    child_end, our_end = open_lifeline()
    try:
        assert not os.get_inheritable(our_end)
        assert not os.get_inheritable(child_end)  # handed over only through pass_fds
    finally:
        os.close(child_end)
        os.close(our_end)
