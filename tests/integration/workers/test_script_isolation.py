"""A script cannot reach what its worker holds: the worker's environment, its parents', or the storage root."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workers.conftest import one_task_flow

SENTINEL = "s3ntinel-7c1d0e5b"
ROOT = Path(__file__).resolve().parents[3]

# Every way the tester went: the parent's environ, each ancestor's up to init, the storage root
# listed and another namespace's file read by its path.
_PROBE = r"""
echo "probe starts as $(id -u)"
cat /proc/$PPID/environ | tr '\0' '\n'
p=$PPID
while [ "$p" -gt 1 ]; do
  cat /proc/$p/environ | tr '\0' '\n'
  p=$(awk '/^PPid:/ {print $2}' /proc/$p/status)
done
ls -laR "$STORAGE"
cat "$STORAGE/other/ns/flow/secret.txt"
env
echo "probe done"
"""


@pytest.fixture
def shared_data_dir() -> Iterator[Path]:
    """A data directory others can traverse, like /var/lib/chorus (pytest's tmp_path is closed to them)."""
    data_dir = Path(tempfile.mkdtemp(prefix="chorus-iso-"))
    data_dir.chmod(0o755)
    other = data_dir / "storage" / "other" / "ns" / "flow"
    other.mkdir(parents=True)
    for directory in (data_dir / "storage", *other.parents, other):
        if directory.is_relative_to(data_dir):
            directory.chmod(0o755)
    (other / "secret.txt").write_text(f"another namespace's {SENTINEL}")
    (other / "secret.txt").chmod(0o644)
    yield data_dir
    shutil.rmtree(data_dir, ignore_errors=True)


def _run_in_worker(database_url: str, data_dir: Path, task_yaml: str, tmp_path: Path) -> dict[str, Any]:
    flow_file = tmp_path / "flow.yaml"
    flow_file.write_text(one_task_flow(task_yaml))
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "CHORUS_DATABASE_URL": database_url,
        "CHORUS_DATA_DIR": str(data_dir),
        "CHORUS_ADMIN_USERNAME": "admin",
        "CHORUS_ADMIN_PASSWORD": f"admin-{SENTINEL}",
        "SECRET_LEAK": base64.b64encode(SENTINEL.encode()).decode(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.workers.script_worker", str(flow_file), "t"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_script_reads_neither_the_workers_environment_nor_the_storage_root(
    database_url: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    task = (
        "    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    failFast: false\n"
        f"    env:\n      STORAGE: {shared_data_dir / 'storage'}\n"
        "    inputFiles:\n      probe.sh: |\n"
        + "".join(f"        {line}\n" for line in _PROBE.strip().splitlines())
        + "    commands:\n      - sh probe.sh"
    )

    result = _run_in_worker(database_url, shared_data_dir, task, tmp_path)

    logs = "\n".join(result["logs"])
    assert "probe done" in logs, result
    assert SENTINEL not in logs
    assert database_url.rsplit("/", 1)[-1] not in logs  # the database name, and so its URL
    # The script's own CHORUS_IDEMPOTENCY_KEY is given on purpose; nothing else of the worker's environment.
    leaked = [line for line in logs.splitlines() if "CHORUS_" in line or "SECRET_" in line]
    assert [line for line in leaked if not line.startswith("CHORUS_IDEMPOTENCY_KEY=chorus-")] == []


def test_a_root_worker_runs_scripts_as_an_unprivileged_user(
    database_url: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    task = "    type: io.kestra.plugin.scripts.shell.Commands\n    commands:\n      - id -u"

    result = _run_in_worker(database_url, shared_data_dir, task, tmp_path)

    expected = os.geteuid() if os.geteuid() != 0 else None
    uid = int(result["logs"][0])
    assert uid != 0 and (expected is None or uid == expected)


def test_an_output_file_linking_out_of_the_working_directory_is_refused(
    database_url: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    target = shared_data_dir / "storage" / "other" / "ns" / "flow" / "secret.txt"
    task = (
        "    type: io.kestra.plugin.scripts.shell.Commands\n"
        f"    outputFiles:\n      - stolen.txt\n    commands:\n      - ln -s {target} stolen.txt"
    )

    result = _run_in_worker(database_url, shared_data_dir, task, tmp_path)

    assert result["state"] == "FAILED"
    assert "link out of the working directory" in result["error"]


def test_the_worker_never_chowns_through_a_link_the_script_left(
    database_url: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    victim_dir = shared_data_dir / "victim"
    victim_dir.mkdir()
    (victim_dir / "file").write_text("x")
    owner = 12345 if os.geteuid() == 0 else os.geteuid()
    for path in (victim_dir, victim_dir / "file"):
        os.chown(path, owner, owner)
    task = f"    type: io.kestra.plugin.scripts.shell.Commands\n    commands:\n      - ln -s {victim_dir} link"

    result = _run_in_worker(database_url, shared_data_dir, task, tmp_path)

    assert result["state"] == "SUCCESS", result
    assert {(victim_dir / "file").stat().st_uid, victim_dir.stat().st_uid} == {owner}


def test_a_process_the_script_leaves_in_the_background_dies_with_it(
    database_url: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    task = "    type: io.kestra.plugin.scripts.shell.Commands\n    commands:\n"
    task += "      - sleep 300 &\n      - echo child=$!"

    result = _run_in_worker(database_url, shared_data_dir, task, tmp_path)

    assert result["state"] == "SUCCESS", result
    child = int(next(m for m in result["logs"] if m.startswith("child=")).removeprefix("child="))
    assert not Path(f"/proc/{child}").exists() or "State:\tZ" in Path(f"/proc/{child}/status").read_text()
