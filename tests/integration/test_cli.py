"""The `chorus` command line as a user runs it: real subprocesses, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "fixtures"


def chorus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_version_prints_the_package_version() -> None:
    result = chorus("--version")

    assert result.returncode == 0 and result.stdout.startswith("chorus ")


def test_validating_kestras_own_flows_accepts_every_file() -> None:
    result = chorus("flow", "validate", str(FIXTURES / "kestra_flows"))

    lines = result.stdout.splitlines()
    verdicts = [line for line in lines if not line.startswith("  warning: ")]  # a deployable flow's warnings
    assert result.returncode == 0, result.stdout
    assert len(verdicts) == len(list((FIXTURES / "kestra_flows").rglob("*.yaml")))
    assert all(line.startswith("OK ") for line in verdicts)


def test_json_output_has_one_object_per_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("id: a\nnamespace: n\ntasks:\n  - id: t\n    type: Log\n    message: hi\n")
    bad = "id: b\nnamespace: n\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Lgo\n"
    (tmp_path / "bad.yaml").write_text(bad)

    result = chorus("flow", "validate", "--json", str(tmp_path))

    reports = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 1
    assert reports["good.yaml"]["valid"] is True
    error = reports["bad.yaml"]["errors"][0]
    assert (error["path"], error["line"], error["suggestion"]) == ("tasks[0].type", 5, "io.kestra.plugin.core.log.Log")


def test_a_missing_path_is_a_usage_error() -> None:
    result = chorus("flow", "validate", "/nonexistent/flows")

    assert result.returncode == 2 and "no such file" in result.stderr


def test_a_bad_setting_names_its_variable_and_exits_2() -> None:
    result = chorus("migrate", env={"CHORUS_DATABASE_URL": "mysql://x", "PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert "CHORUS_DATABASE_URL" in result.stderr and "PostgreSQL" in result.stderr


def test_flower_without_its_extra_says_how_to_install_it_and_exits_2() -> None:
    # As after `pip install -e .` alone (the dev install has Flower): the check is made to fail.
    code = (
        "import sys\n"
        "from orchestrator import cli\nfrom orchestrator.cli import ops as cli_ops\n"
        "cli_ops.flower_installed = lambda: False\n"
        "sys.exit(cli.main(['flower']))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "CHORUS_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)

    assert result.returncode == 2, result.stderr
    assert "pip install -e '.[flower]'" in result.stderr
