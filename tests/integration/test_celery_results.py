"""What Chorus leaves in the result backend: chain links store no result, results expire in hours, joins fire."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import chord

from orchestrator.celery_app import JOIN_TASK_RUN, RUN_TASK_RUN
from tests.harness.engines import EngineFactory
from tests.harness.waiting import wait_until
from tests.integration.test_fanout_chunks import Cluster, _cluster, _run_to_end, _state

SLEEP = """
id: one-sleep
namespace: tests.fanout
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0S
"""


@pytest.fixture
def cluster(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Iterator[Cluster]:
    yield from _cluster(database_url, idle_broker_url, engine_factory, 50)


def _result_keys(client: redis.Redis) -> dict[str, int]:
    return {k.decode().removeprefix("celery-task-meta-"): client.ttl(k) for k in client.scan_iter("celery-task-meta-*")}


def test_a_chain_link_stores_no_result_and_the_last_one_keeps_its_result_for_hours(
    cluster: Cluster, idle_broker_url: str
) -> None:
    client = redis.Redis.from_url(idle_broker_url)
    execution_id = _run_to_end(cluster.engine, SLEEP, "one-sleep")

    assert _state(cluster.engine, execution_id) == "SUCCESS"
    (link,) = [celery_id for _, celery_id in cluster.sent.named(RUN_TASK_RUN)]
    (join,) = [celery_id for _, celery_id in cluster.sent.named(JOIN_TASK_RUN)]
    # The join stores its result just after it committed the execution's end: wait for it.
    stored = wait_until(lambda: (keys := _result_keys(client)) and join in keys and keys, message="join's result")
    assert link not in stored  # its verdict travelled in the join's message
    assert join in stored and 0 < stored[join] <= 6 * 3600  # CHORUS_RESULT_EXPIRES_S, not days


def test_a_chord_of_chorus_signatures_fires_its_callback_once_every_member_reported(cluster: Cluster) -> None:
    # Header members keep their results (the compiler sets ignore_result only on chain links): Celery's
    # Redis backend counts them in the chord's `.j`/`.t` keys, which live CHORUS_CHORD_EXPIRES_S.
    app = cluster.app
    members = [app.signature(RUN_TASK_RUN, kwargs={"execution_id": "none", "task_id": f"t{i}"}) for i in range(3)]
    result = chord(members, app.signature(JOIN_TASK_RUN, kwargs={"execution_id": "none"}), app=app).apply_async()

    assert result.get(timeout=30) == "stop"  # no such execution: each member and the join do nothing
    assert len(cluster.sent.named(JOIN_TASK_RUN)) == 1
