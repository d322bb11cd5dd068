"""A webhook receiver that honours Idempotency-Key (as Stripe does) and can hold a request until released.

Every request is recorded (`received`); the first request with a key is applied (`applied`), a repeat of
that key is answered as the first was and applied no more. `hold(path)` makes the next request to `path`
wait, after it was recorded, until `release()`: a test kills the sender while its request is in flight.
"""

from __future__ import annotations

import threading

from tests.fakes.base import FakeResponse, FakeServer, RecordedRequest


class IdempotentReceiver(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, RecordedRequest] = {}  #: first request of each key: the effects
        self.arrived = threading.Event()  #: set when a held request has arrived (and been recorded)
        self._release = threading.Event()
        self._held: set[str] = set()

    def hold(self, path: str) -> str:
        """Hold the next request to `path` (without query) until `release()`; return the full URL."""
        with self.lock:
            self._held.add(path)
        return self.url + path

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self._release.set()  # never leave a handler thread waiting
        super().stop()

    def respond(self, request: RecordedRequest) -> FakeResponse:
        path = request.path.split("?", 1)[0]
        key = request.headers.get("idempotency-key")
        with self.lock:
            held = path in self._held
            self._held.discard(path)
            replay = key is not None and key in self.applied
            if key is not None and not replay:
                self.applied[key] = request
        if held:
            self.arrived.set()
            self._release.wait(60)
        return FakeResponse.of_text("ok", headers={"Idempotent-Replayed": "true"} if replay else None)

    def applied_to(self, path: str) -> list[RecordedRequest]:
        """The effects at `path`: one per key however often it was sent."""
        with self.lock:
            return [r for r in self.applied.values() if r.path.split("?", 1)[0] == path]
