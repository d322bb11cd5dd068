"""A Prometheus collector of each pool's queue: its depth and the age of its oldest message, read at scrape time."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from orchestrator.celery_app import SENT_AT_HEADER

logger = logging.getLogger(__name__)


class QueueDepthCollector(Collector):
    """`chorus_queue_depth_messages{pool}`: messages waiting in each pool's queue (not those already taken), and
    `chorus_queue_oldest_message_age_seconds{pool}`: how long its oldest one has waited (0 when empty).

    Chorus sends no message priorities, so each Celery queue is exactly one Redis list named after its pool;
    kombu pushes on the left and workers pop on the right, so the oldest message is at index -1.
    """

    def __init__(self, broker_url: str, pools: Sequence[str], *, timeout_s: float = 1.0) -> None:
        self._pools = tuple(pools)
        self._client = redis.Redis.from_url(broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "chorus_queue_depth_messages", "Messages waiting in a pool's queue (Redis list length).", labels=["pool"]
        )
        age = GaugeMetricFamily(
            "chorus_queue_oldest_message_age_seconds",
            "How long the oldest message waiting in a pool's queue has waited (0 when the queue is empty).",
            labels=["pool"],
        )
        try:
            pipe = self._client.pipeline(transaction=False)
            for pool in self._pools:
                pipe.llen(pool)
                pipe.lindex(pool, -1)
            replies = pipe.execute()
        except redis.RedisError:
            logger.warning("could not read queue lengths from the broker", exc_info=True)
            return
        now = time.time()
        for pool, length, oldest in zip(self._pools, replies[0::2], replies[1::2], strict=True):
            family.add_metric([pool], float(length))
            sent_at = _sent_at(oldest)
            if oldest is None or sent_at is not None:  # a message from a sender without the stamp: unknown
                age.add_metric([pool], max(now - sent_at, 0.0) if sent_at is not None else 0.0)
        yield family
        yield age

    def close(self) -> None:
        self._client.close()


def _sent_at(raw: bytes | None) -> float | None:
    """The send time stamped into a kombu message's headers, if the message is there and carries one."""
    if raw is None:
        return None
    try:
        value = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None
