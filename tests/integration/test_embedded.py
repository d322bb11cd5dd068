"""Embedded PostgreSQL and Redis servers and the harness's service discovery, with real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from orchestrator.cli import embedded, pg_files
from orchestrator.cli.embedded import EmbeddedServer, free_port, start_postgres, start_redis
from orchestrator.core.errors import ConfigurationError
from tests.harness import services

REPO_ROOT = Path(__file__).resolve().parents[2]

Start = Callable[[EmbeddedServer], EmbeddedServer]


@pytest.fixture
def started() -> Iterator[Start]:
    """Registers servers so a failing test still stops them."""
    servers: list[EmbeddedServer] = []

    def register(server: EmbeddedServer) -> EmbeddedServer:
        servers.append(server)
        return server

    yield register
    for server in servers:
        server.stop()


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def assert_gone(processes: list[psutil.Process]) -> None:
    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def is_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int) -> bool:
    return wait_until(lambda: is_gone(pid))


def query(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(services.psycopg_url(url), autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((embedded.HOST, 0))
    sock.listen()
    return sock


def run_child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": python_path, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_postgres_keeps_data_across_restarts_on_the_same_port(tmp_path: Path, started: Start) -> None:
    server = started(start_postgres(tmp_path))
    query(server.url, "CREATE TABLE kept (value text); INSERT INTO kept VALUES ('hello')")
    server.stop()

    again = started(start_postgres(tmp_path))

    assert again.url == server.url
    assert query(again.url, "SELECT value FROM kept") == [("hello",)]


def test_postgres_url_names_the_requested_database(tmp_path: Path, started: Start) -> None:
    server = started(start_postgres(tmp_path, database="flows"))

    assert server.url.startswith(f"postgresql+psycopg://postgres@{embedded.HOST}:")
    assert server.url.endswith("/flows")
    assert query(server.url, "SELECT current_database()") == [("flows",)]


def test_postgres_stop_leaves_no_process_and_may_be_repeated(tmp_path: Path, started: Start) -> None:
    server = started(start_postgres(tmp_path))
    family = process_tree(server.pid)
    assert len(family) > 1  # the postmaster and its background processes

    server.stop()
    server.stop()

    assert_gone(family)


def test_postgres_restarts_a_server_an_earlier_run_left_behind(tmp_path: Path, started: Start) -> None:
    first = started(start_postgres(tmp_path))
    first.stop()
    pgdata = first.data_path
    account = pg_files.postgres_account()
    uid, gid, extra_groups = pg_files.process_identity(account)
    leftover = subprocess.Popen(
        [str(pg_files.bin_dir_for(account) / "postgres"), "-D", str(pgdata), "-c", f"port={free_port()}"],
        cwd=pgdata, start_new_session=True, user=uid, group=gid, extra_groups=extra_groups,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pid_file = pgdata / "postmaster.pid"
        assert wait_until(lambda: pid_file.exists() and "ready" in pid_file.read_text()), "no leftover server"

        server = started(start_postgres(tmp_path))

        assert is_gone(leftover.pid)
        assert query(server.url, "SELECT 1") == [(1,)]
    finally:
        leftover.kill()
        leftover.wait()


def test_postgres_refuses_a_busy_port(tmp_path: Path) -> None:
    with listening_socket() as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError) as caught:
            start_postgres(tmp_path, port=port)

    assert caught.value.name == "postgres port"
    assert str(port) in caught.value.message


def test_postgres_refuses_a_data_dir_another_server_is_using(tmp_path: Path, started: Start) -> None:
    started(start_postgres(tmp_path))

    with pytest.raises(ConfigurationError) as caught:
        start_postgres(tmp_path)

    assert caught.value.name == "postgres data directory"
    assert str(tmp_path) in caught.value.message


def test_postgres_start_failure_reports_the_server_log(tmp_path: Path) -> None:
    started_once = start_postgres(tmp_path)
    started_once.stop()
    (started_once.data_path / "postgresql.auto.conf").write_text("shared_buffers = 'not a size'\n")

    with pytest.raises(ConfigurationError) as caught:
        start_postgres(tmp_path)

    assert caught.value.name == "postgres"
    assert "shared_buffers" in caught.value.message


def test_redis_keeps_data_across_restarts_when_persisting(tmp_path: Path, started: Start) -> None:
    server = started(start_redis(tmp_path, persist=True))
    with redis.Redis.from_url(server.url) as client:
        client.set("kept", "hello")
    server.stop()

    again = started(start_redis(tmp_path, persist=True))

    assert again.url == server.url
    with redis.Redis.from_url(again.url) as client:
        assert client.get("kept") == b"hello"


def test_redis_starts_empty_when_not_persisting(tmp_path: Path, started: Start) -> None:
    server = started(start_redis(tmp_path, persist=False))
    with redis.Redis.from_url(server.url) as client:
        client.set("lost", "hello")
    server.stop()

    again = started(start_redis(tmp_path, persist=False))

    with redis.Redis.from_url(again.url) as client:
        assert client.get("lost") is None


def test_redis_stop_leaves_no_process_and_may_be_repeated(tmp_path: Path, started: Start) -> None:
    server = started(start_redis(tmp_path))
    family = process_tree(server.pid)

    server.stop()
    server.stop()

    assert_gone(family)


def test_redis_refuses_a_busy_port(tmp_path: Path) -> None:
    with listening_socket() as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError) as caught:
            start_redis(tmp_path, port=port)

    assert caught.value.name == "redis port"
    assert str(port) in caught.value.message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux only")
def test_servers_stop_when_the_process_that_started_them_is_killed(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from orchestrator.cli.embedded import start_postgres, start_redis\n"
        f"pg = start_postgres(Path({str(tmp_path / 'pg')!r}))\n"
        f"rd = start_redis(Path({str(tmp_path / 'redis')!r}))\n"
        "print(pg.pid, rd.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": python_path}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    assert len(pids) == 2
    assert all(wait_gone(pid) for pid in pids)
    # Both shut down cleanly rather than being killed.
    assert "database system is shut down" in (tmp_path / "pg" / "postgres.log").read_text()
    assert "ready to exit" in (tmp_path / "redis" / "redis.log").read_text()


def test_postgres_admin_url_starts_a_throwaway_server_when_nothing_answers() -> None:
    configured = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    code = (
        "import json\n"
        "from tests.harness import services\n"
        "url = services.postgres_admin_url()\n"
        "server, data_dir = services._throwaway['postgres']\n"
        "import psycopg\n"
        "with psycopg.connect(services.psycopg_url(url)) as conn: version = conn.info.server_version\n"
        "print(json.dumps({'url': url, 'pid': server.pid, 'data_dir': str(data_dir), 'version': version}))\n"
    )

    child = run_child(code, CHORUS_TEST_DATABASE_URL=configured)

    found = json.loads(child.stdout)
    assert found["url"] != configured
    assert found["version"] >= 130000
    assert "started a throwaway postgres" in child.stderr
    assert wait_gone(found["pid"])  # stopped at the child's exit
    assert not Path(found["data_dir"]).exists()


def test_redis_url_starts_a_throwaway_server_when_nothing_answers() -> None:
    configured = f"redis://127.0.0.1:{free_port()}/0"
    code = (
        "import json, redis\n"
        "from tests.harness import services\n"
        "url = services.redis_url()\n"
        "server, data_dir = services._throwaway['redis']\n"
        "assert redis.Redis.from_url(url).ping()\n"
        "print(json.dumps({'url': url, 'pid': server.pid, 'data_dir': str(data_dir)}))\n"
    )

    child = run_child(code, CHORUS_TEST_REDIS_URL=configured)

    found = json.loads(child.stdout)
    assert found["url"] != configured
    assert "started a throwaway redis" in child.stderr
    assert wait_gone(found["pid"])
    assert not Path(found["data_dir"]).exists()


def test_postgres_admin_url_uses_the_configured_server_when_it_answers() -> None:
    answering = services.postgres_admin_url()
    code = "from tests.harness import services\nprint(services.postgres_admin_url())\n"

    child = run_child(code, CHORUS_TEST_DATABASE_URL=answering)

    assert child.stdout.strip() == answering
    assert child.stderr == ""


def test_create_database_from_a_template_copies_its_tables() -> None:
    admin = services.postgres_admin_url()
    template = services.unique_database_name("template")
    clone = services.unique_database_name("clone")
    try:
        template_url = services.create_database(admin, template)
        query(template_url, "CREATE TABLE flows (id text); INSERT INTO flows VALUES ('hello')")

        clone_url = services.create_database(admin, clone, template=template)

        assert clone_url.endswith(f"/{clone}")
        assert query(clone_url, "SELECT id FROM flows") == [("hello",)]
    finally:
        services.drop_database(admin, clone)
        services.drop_database(admin, template)


def test_drop_database_ends_open_sessions() -> None:
    admin = services.postgres_admin_url()
    name = services.unique_database_name("dropped")
    url = services.create_database(admin, name)
    with psycopg.connect(services.psycopg_url(url)) as open_session:
        services.drop_database(admin, name)

        assert query(admin, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == []
        with pytest.raises(psycopg.OperationalError):
            open_session.execute("SELECT 1")


def test_free_port_never_hands_out_the_same_port_twice_in_a_process() -> None:
    # Consecutive bind(0) calls may get the same port back once the first socket closes; two servers started
    # from two calls, before either binds, once got one port between them (a worker group served no metrics).
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_redis_data_and_server_logs_are_closed_to_other_users(tmp_path: Path, started: Start) -> None:
    # A script task runs as another user on the same machine: the append-only file (every message and result)
    # and the servers' logs (failed statements with their values) must not be readable to it.
    redis_dir = tmp_path / "redis"
    server = started(start_redis(redis_dir, persist=True, password="pw-for-the-test"))
    redis.Redis.from_url(server.url).set("k", "v")

    assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((redis_dir / "redis.log").stat().st_mode) == 0o600
