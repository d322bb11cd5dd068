"""The result a finish stores for the last chain link it ran itself (workers.runtime._store_results): the same
entry Celery's `store_result` writes, without its read of the id first, and what `chorus retry` finds by that id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from celery import states
from celery.app.task import Context

from orchestrator.celery_app import CONTROL_QUEUE, JOIN_TASK_RUN, create_celery_app
from orchestrator.cli.reapply import FROM_RESULT, locate
from orchestrator.core.errors import NotFound
from orchestrator.engine import Verdict
from orchestrator.settings import load_settings
from workers.runtime import _store_success


def _request(task_id: str, kwargs: dict[str, Any]) -> Context:
    return Context(
        id=task_id, task=JOIN_TASK_RUN, args=[Verdict.STOP], kwargs=kwargs, hostname="w@h",
        delivery_info={"routing_key": CONTROL_QUEUE},
    )  # fmt: skip


def test_a_link_run_in_a_finish_stores_what_celery_would_with_one_write_and_no_read(
    redis_url: str, tmp_path: Path
) -> None:
    app = create_celery_app(load_settings(broker_url=redis_url, data_dir=tmp_path))
    kwargs = {"execution_id": "e1", "parent_id": None}
    app.backend.store_result("by-celery", Verdict.STOP, states.SUCCESS, request=_request("by-celery", kwargs))
    client = redis.Redis.from_url(redis_url)
    seen: list[str] = []
    original = app.backend.client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        seen.append(str(args[0]))
        return original(*args, **options)

    app.backend.client.execute_command = counting
    try:
        app.backend.store_result("by-celery-2", Verdict.STOP, states.SUCCESS, request=_request("by-celery-2", kwargs))
        assert seen == ["GET"]  # Celery's own path reads the id first (its write goes in a pipeline)
        seen.clear()
        _store_success(app.backend, "by-chorus", Verdict.STOP, _request("by-chorus", kwargs))
    finally:
        app.backend.client.execute_command = original

    assert seen == []  # no read
    ours, celerys = app.backend.get_task_meta("by-chorus"), app.backend.get_task_meta("by-celery")
    for meta in (ours, celerys):
        meta.pop("date_done"), meta.pop("task_id")
    assert ours == celerys
    assert 0 < client.ttl("celery-task-meta-by-chorus") <= 6 * 3600  # expires as Celery's own results do
    message = locate(app, "by-chorus", lambda _: None)  # `chorus retry` of that id
    assert (message.name, message.queue, message.kwargs, message.source) == (
        JOIN_TASK_RUN, CONTROL_QUEUE, kwargs, FROM_RESULT,
    )  # fmt: skip


def test_retry_of_an_id_no_finish_stored_falls_back_to_the_attempts(redis_url: str, tmp_path: Path) -> None:
    app = create_celery_app(load_settings(broker_url=redis_url, data_dir=tmp_path))
    asked: list[str] = []

    def no_attempt(celery_id: str) -> None:
        asked.append(celery_id)

    with pytest.raises(NotFound, match="no Celery task and no task run attempt"):
        locate(app, "never-stored", no_attempt)
    assert asked == ["never-stored"]
