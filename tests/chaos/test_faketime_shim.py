"""The clock-skew shape's processes skew only their wall clock: sleeps, timed waits and forks behave as on a host
whose clock is merely off (tests/chaos/faketime_shim.c works around libfaketime 0.9.10)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.cluster import FAKETIME_LIBRARY, monotonic_shim

pytestmark = pytest.mark.skipif(
    not FAKETIME_LIBRARY.exists() or shutil.which("cc") is None, reason="libfaketime or a C compiler is missing"
)

#: Sleeps and timed waits take their time; a multi-threaded process forks children that reach exec.
PROBE = """
import subprocess, threading, time
t = time.monotonic(); time.sleep(0.2); slept = time.monotonic() - t
t = time.monotonic(); threading.Event().wait(0.2); waited = time.monotonic() - t
stop = False
def churn():
    while not stop:
        threading.Event().wait(0.0005)
threads = [threading.Thread(target=churn, daemon=True) for _ in range(4)]
for thread in threads:
    thread.start()
for _ in range(200):
    subprocess.run(["/bin/true"], preexec_fn=lambda: None, timeout=10)
stop = True
print(time.time(), slept, waited)
"""


def _run(preload: str, skew: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LD_PRELOAD": preload,
        "FAKETIME": skew,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("skew_s", [3.0, -2.0])
def test_a_skewed_process_sleeps_waits_and_forks_as_on_a_true_host(tmp_path: Path, skew_s: float) -> None:
    preload = f"{monotonic_shim(tmp_path)}:{FAKETIME_LIBRARY}"

    before = time.time()
    done = _run(preload, f"{skew_s:+g}s")
    after = time.time()

    assert done.returncode == 0, done.stderr
    wall, slept, waited = (float(x) for x in done.stdout.split())
    assert before + skew_s - 1 < wall < after + skew_s + 1  # the wall clock is skewed
    assert 0.19 < slept < 5 and 0.19 < waited < 5  # monotonic waits are true


def test_without_the_shim_libfaketime_breaks_python_sleeps() -> None:
    """Why the shim exists: were this to pass one day (a fixed libfaketime), the shim could go."""
    done = _run(str(FAKETIME_LIBRARY), "+3s")

    assert done.returncode != 0 and "Invalid argument" in done.stderr
