"""A webhook receiver (Slack incoming webhooks, generic webhooks, plain HTTP targets) with scripted answers.

Every request is recorded. By default it answers like Slack (`200 ok`); a test scripts other answers per
path (`script(path, *responses)`: consumed in order, the last repeats) and reads back what it received.
"""

from __future__ import annotations

import threading

from tests.fakes.base import FakeResponse, FakeServer, RecordedRequest


class WebhookReceiver(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._scripts: dict[str, list[FakeResponse]] = {}
        self._served: dict[str, int] = {}
        self._scripts_lock = threading.Lock()

    def script(self, path: str, *responses: FakeResponse) -> str:
        """Answer requests to `path` (without query) with `responses`; return the full URL."""
        assert responses
        with self._scripts_lock:
            self._scripts[path] = list(responses)
            self._served[path] = 0
        return self.url + path

    def respond(self, request: RecordedRequest) -> FakeResponse:
        path = request.path.split("?", 1)[0]
        with self._scripts_lock:
            responses = self._scripts.get(path)
            if responses is None:
                return FakeResponse.of_text("ok")
            served = self._served[path]
            self._served[path] = served + 1
            return responses[min(served, len(responses) - 1)]
