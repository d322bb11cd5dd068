"""A Prometheus collector of each pool's queue depth: the length of its Redis list, read at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class QueueDepthCollector(Collector):
    """`chorus_queue_depth_messages{pool}`: messages waiting in each pool's queue (not those already taken).

    Chorus sends no message priorities, so each Celery queue is exactly one Redis list named after its pool.
    """

    def __init__(self, broker_url: str, pools: Sequence[str], *, timeout_s: float = 1.0) -> None:
        self._pools = tuple(pools)
        self._client = redis.Redis.from_url(broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "chorus_queue_depth_messages", "Messages waiting in a pool's queue (Redis list length).", labels=["pool"]
        )
        try:
            pipe = self._client.pipeline(transaction=False)
            for pool in self._pools:
                pipe.llen(pool)
            lengths = pipe.execute()
        except redis.RedisError:
            logger.warning("could not read queue lengths from the broker", exc_info=True)
            return
        for pool, length in zip(self._pools, lengths, strict=True):
            family.add_metric([pool], float(length))
        yield family

    def close(self) -> None:
        self._client.close()
