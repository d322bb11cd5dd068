"""Redis Streams source of realtime triggers (`io.chorus.trigger.RedisStream`): a consumer group's reader.

Entries are read with XREADGROUP, so each is delivered to one consumer of the group and stays pending until
acknowledged (XACK), which the runner does only after the execution committed. Before new entries, a reader
takes back what is pending for its own consumer name (read before a crash, never acknowledged), then what
another consumer left pending for longer than `claimIdle` (a dead replica with another name): nothing is lost.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from orchestrator.triggers.realtime_source import Message

logger = logging.getLogger(__name__)

#: An entry pending this long at another consumer is taken over: long enough that a live consumer has
#: committed and acknowledged it (one execution's creation takes milliseconds), short enough to recover soon.
CLAIM_IDLE_MS = 60_000


class RedisStreamSource:
    """One consumer of one stream's consumer group."""

    def __init__(self, props: dict[str, Any]) -> None:
        self.key = str(props["key"])
        self.group = str(props["group"])
        self.consumer = str(props.get("consumer") or "chorus")
        self.client = redis.Redis.from_url(str(props["url"]), socket_timeout=5, socket_connect_timeout=5)
        try:
            # MKSTREAM: a trigger deployed before its producer's first entry still gets every entry.
            self.client.xgroup_create(self.key, self.group, id=str(props.get("startId") or "$"), mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def read(self, limit: int) -> list[Message]:
        entries = self._pending_of_mine(limit) or self._abandoned(limit) or self._new(limit)
        for entry_id, fields in entries:
            if not fields:  # deleted from the stream while pending: nothing to start, and it must not block
                self._ack(_text(entry_id))
        return [self._message(entry_id, fields) for entry_id, fields in entries if fields]

    def lag(self) -> int:
        """Entries not yet delivered to the group plus entries delivered but not acknowledged."""
        groups: Any = self.client.xinfo_groups(self.key)
        for group in groups:
            if _text(group.get("name")) == self.group:
                lag = group.get("lag")
                if lag is None:  # Redis cannot tell (entries deleted in the range): count the whole stream
                    lag = self.client.xlen(self.key)
                return int(lag) + int(group.get("pending") or 0)
        return 0

    def close(self) -> None:
        self.client.close()

    def _pending_of_mine(self, limit: int) -> list[Any]:
        return self._xread("0", limit)

    def _abandoned(self, limit: int) -> list[Any]:
        reply: Any = self.client.xautoclaim(self.key, self.group, self.consumer, CLAIM_IDLE_MS, "0-0", count=limit)
        return list(reply[1]) if reply else []

    def _new(self, limit: int) -> list[Any]:
        return self._xread(">", limit)

    def _xread(self, start: str, limit: int) -> list[Any]:
        reply: Any = self.client.xreadgroup(self.group, self.consumer, {self.key: start}, count=limit)
        return list(reply[0][1]) if reply else []

    def _message(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Message:
        ident = _text(entry_id)
        value = {_text(k): _text(v) for k, v in fields.items()}
        return Message(
            id=f"{self.key}/{self.group}/{ident}",
            variables={"key": self.key, "group": self.group, "id": ident, "value": value},
            ack=lambda: self._ack(ident),
        )

    def _ack(self, ident: str) -> None:
        self.client.xack(self.key, self.group, ident)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def open_source(props: dict[str, Any]) -> RedisStreamSource:
    return RedisStreamSource(props)
