"""A throwaway redis-server on a free port (for tests that stop it or give it a password)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from orchestrator.cli.embedded import free_port


@dataclass(frozen=True)
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]


@contextmanager
def redis_server(password: str) -> Iterator[RedisServer]:
    """redis-server requiring `password`, stopped on exit (or earlier by the test)."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=password, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield RedisServer(port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
