"""What a realtime trigger's queue source is: its messages and the protocol the runner reads it through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One message of a source: its id (unique within the source), what `trigger.*` shows, and its ack."""

    id: str
    variables: dict[str, Any]
    ack: Callable[[], None]


class Source(Protocol):
    """A consumer of one queue for one trigger."""

    def read(self, limit: int) -> list[Message]:
        """Up to `limit` messages, unacknowledged ones this consumer owns first; never blocks long."""

    def lag(self) -> int:
        """Messages waiting in the queue for this consumer (or its group)."""

    def close(self) -> None: ...


SourceFactory = Callable[[dict[str, Any]], Source]
