"""Whether this server is shutting down, so that waits inside requests end instead of holding a SIGTERM.

uvicorn stops accepting connections at SIGTERM and then waits for every request in flight; a `wait=true` request
polls for up to `wait_timeout_s` (5 minutes), which held shutdown for minutes. `serve()` runs uvicorn and sets
`draining` as soon as it is told to stop; waiting code checks it and answers with what it has.
"""

from __future__ import annotations

import threading
from types import FrameType

import uvicorn

#: Set once the server has been told to stop (SIGTERM, SIGINT); never cleared in a process's life.
draining = threading.Event()


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        draining.set()
        super().handle_exit(sig, frame)


def serve(config: uvicorn.Config) -> None:
    """Run uvicorn with `config` until it is stopped, setting `draining` when the stop begins."""
    _Server(config).run()
