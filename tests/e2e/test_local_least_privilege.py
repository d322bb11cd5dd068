"""`chorus local` runs as a least-privilege cluster would: a runtime database role, passwords, a keyed audit trail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from orchestrator.cli.embedded import free_port


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A `chorus local` on its own data directory; yields its API base URL and the data directory."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHORUS_", "PG"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "local", "--port", str(port), "--data-dir", str(tmp_path),
         "--flows", str(Path(__file__).parents[2] / "examples")],
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
            assert process.poll() is None, "chorus local exited while starting"
            time.sleep(0.5)
        yield base, tmp_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def test_chorus_local_serves_on_a_runtime_role_behind_passwords_and_keys_its_audit_trail(
    local: tuple[str, Path],
) -> None:
    base, data_dir = local
    run = httpx.post(
        f"{base}/executions/company.team/hello", params={"wait": "true"}, files={"name": (None, "Ada")}, timeout=60
    )
    assert run.status_code == 200 and run.json()["state"]["current"] == "SUCCESS", run.text
    passwords = json.loads((data_dir / "postgres" / "credentials.json").read_text())
    port = int((data_dir / "postgres" / "port").read_text())
    runtime = f"postgresql://chorus_app:{passwords['chorus_app']}@127.0.0.1:{port}/chorus"

    # A script on this machine knows the port; without a password it is not the superuser any more.
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=chorus passfile=/dev/null", connect_timeout=5)
    with psycopg.connect(runtime, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        # The server, its sweeper and the workers hold connections: all of them as the runtime role.
        users = conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'chorus' AND pid <> pg_backend_pid()"
        ).fetchall()
        assert users == [("chorus_app",)]
        for statement in ("SET session_replication_role = replica", "UPDATE audit_events SET actor = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)

    key_file = data_dir / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    verify = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "audit", "verify"],
        env={"PATH": os.environ["PATH"], "CHORUS_DATABASE_URL": runtime, "CHORUS_AUDIT_KEY_FILE": str(key_file)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "HMAC-SHA256" in verify.stdout and "have no MAC" not in verify.stdout
