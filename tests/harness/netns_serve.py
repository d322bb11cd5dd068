"""`python -m tests.harness.netns_serve postgres|redis DATA_DIR HOST PORT NETWORK`: a throwaway server on HOST.

Run inside a network namespace (`ip netns exec NS python -m ...`) so the server listens on that host's address;
PostgreSQL trusts the clients of NETWORK (the lab's CIDR). It prints `ready <url>` once the server answers, then
holds it until SIGTERM or SIGINT and stops it cleanly; the server also stops if this process dies (the
embedded servers' parent-death signal).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from orchestrator.cli.embedded import start_postgres, start_redis


def main(argv: list[str]) -> int:
    kind, data_dir, host, port, network = argv[0], Path(argv[1]), argv[2], int(argv[3]), argv[4]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if kind == "postgres":
        server = start_postgres(data_dir, port=port, host=host, database="chorus", durable=False, trust_network=network)
    else:
        server = start_redis(data_dir, port=port, host=host, persist=False)
    try:
        print(f"ready {server.url}", flush=True)
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
