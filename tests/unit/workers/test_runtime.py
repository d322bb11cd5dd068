"""register_tasks: the Chorus Celery tasks are registered by name, and each process's Engine carries the hooks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from orchestrator.celery_app import ENTER_TASK_RUN, JOIN_TASK_RUN, RUN_INLINE, RUN_TASK_RUN, create_celery_app
from orchestrator.observability.task_run_log import TaskRunLog
from orchestrator.settings import load_settings
from workers import runtime


@pytest.fixture
def app() -> Iterator[Celery]:
    app = create_celery_app(load_settings(), main="workers")
    yield app
    runtime._holder.hooks = []  # leave no hook and no engine behind for other tests
    runtime._holder.reset()
    app.close()


def test_the_four_tasks_are_registered_under_their_names(app: Celery) -> None:
    runtime.register_tasks(app, load_settings())

    assert {RUN_TASK_RUN, ENTER_TASK_RUN, RUN_INLINE, JOIN_TASK_RUN} <= set(app.tasks)
    assert app.tasks[RUN_TASK_RUN].name == RUN_TASK_RUN


def test_the_process_engine_carries_the_hooks_given_at_registration(app: Celery) -> None:
    hook = TaskRunLog()
    runtime.register_tasks(app, load_settings(), hooks=[hook])
    runtime._holder.reset()  # as after a fork: the next engine is built with the hooks

    assert hook in runtime.current_engine().hooks
