"""AMQP source of realtime triggers (Kestra's `io.kestra.plugin.amqp.RealtimeTrigger`), through kombu.

Messages are fetched one at a time with basic.get and manual acknowledgement; the runner acknowledges a
message only after its execution committed, so a consumer killed in between leaves it unacknowledged and
the broker delivers it again. The message's `message_id` property is its identity for the receipt that
turns that second delivery into a no-op; a message without one is identified by a digest of its body and
headers (two identical messages without an id then start one execution: publishers should set it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from kombu import Connection, Queue  # type: ignore[attr-defined]  # kombu ships no type hints

from orchestrator.triggers.realtime_source import Message

logger = logging.getLogger(__name__)


class AmqpQueueSource:
    """One consumer of one existing queue (Kestra's trigger does not declare it either)."""

    def __init__(self, props: dict[str, Any]) -> None:
        self.queue_name = str(props["queue"])
        self.json = str(props.get("serdeType") or "STRING").upper() == "JSON"
        self.connection: Any = Connection(str(props["url"]), connect_timeout=5)  # type: ignore[no-untyped-call]
        self.channel: Any = self.connection.channel()  # type: ignore[no-untyped-call]
        self.queue: Any = Queue(self.queue_name, channel=self.channel, no_declare=True)  # type: ignore[no-untyped-call]

    def read(self, limit: int) -> list[Message]:
        messages = []
        for _ in range(limit):
            raw = self.queue.get(no_ack=False)
            if raw is None:
                break
            messages.append(self._message(raw))
        return messages

    def lag(self) -> int:
        """Ready messages in the queue (unacknowledged ones of this consumer are counted by the broker apart)."""
        declared = self.channel.queue_declare(self.queue_name, passive=True)
        return int(declared.message_count)

    def close(self) -> None:
        self.connection.release()

    def _message(self, raw: Any) -> Message:
        body: bytes = raw.body if isinstance(raw.body, bytes) else str(raw.body).encode()
        headers = dict(raw.headers or {})
        message_id = raw.properties.get("message_id")
        if not message_id:
            digest = hashlib.sha256(body + json.dumps(headers, sort_keys=True, default=str).encode()).hexdigest()
            message_id = f"sha256:{digest}"
        text = body.decode("utf-8", "replace")
        data: Any = text
        if self.json:
            try:
                data = json.loads(text)
            except ValueError:
                logger.warning("AMQP message %s on %s is not JSON; passed on as text", message_id, self.queue_name)
        return Message(
            id=f"{self.queue_name}/{message_id}",
            variables={"data": data, "messageId": str(message_id), "headers": headers, "queue": self.queue_name},
            ack=raw.ack,
        )


def open_source(props: dict[str, Any]) -> AmqpQueueSource:
    return AmqpQueueSource(props)
