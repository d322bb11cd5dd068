"""kv.Set renders its value typed, as Kestra's Set (core/src/main/java/io/kestra/plugin/core/kv/Set.java#run uses
renderTyped): one expression keeps its type, anything else is text (RetryCaseTest#retryWithFlowableErrors counts
with `{{ kv('n') + 1 }}`)."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.engine import Engine
from tests.integration.workers.conftest import Runner, one_task_flow


@pytest.mark.parametrize(
    ("value", "kind", "stored"),
    [
        ('"{{ 1 + 1 }}"', "NUMBER", 2),
        ('"{{ 1 + 1 }} apples"', "STRING", "2 apples"),
        ('"{{ 1 == 1 }}"', "BOOLEAN", True),
        ("plain", "STRING", "plain"),
    ],
)
def test_set_keeps_the_type_of_a_lone_expression_only(
    run_task: Runner, worker_engine: Engine, value: str, kind: str, stored: object
) -> None:
    key = f"k{uuid.uuid4().hex[:8]}"
    task = f"    type: io.kestra.plugin.core.kv.Set\n    key: {key}\n    value: {value}"
    outcome = run_task(one_task_flow(task), "t")

    assert outcome.error is None
    row = worker_engine.kv.get("tests.workers", key)
    assert (row.value_type, row.value["v"]) == (kind, stored)
