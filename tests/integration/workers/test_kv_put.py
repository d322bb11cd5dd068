"""kv.Put (Kestra 2, core/src/main/java/io/kestra/plugin/core/kv/Put.java) on the real KV store: it merges into
the stored value and keeps the key's description; `errorOnMissing` fails on an absent key (PutTest)."""

from __future__ import annotations

import uuid

from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.engine.audit_trail import ApiAction
from orchestrator.engine.kv import typed_value
from tests.integration.workers.conftest import Runner, one_task_flow

_AUDIT = ApiAction(
    actor="test", client="test", action="kv.put", outcome="success", status=0, namespace="tests.workers", subject="kv"
)


def _put(key: str, value: str, extra: str = "") -> str:
    return one_task_flow(f"    type: io.kestra.plugin.core.kv.Put\n    key: {key}\n    value: {value}{extra}")


def test_put_merges_into_the_stored_json_and_keeps_the_description(run_task: Runner, worker_engine: Engine) -> None:
    """PutTest#shouldReplaceStringValue (description kept) and #shouldMergeJsonFromEntryList."""
    key = f"k{uuid.uuid4().hex[:8]}"
    stored = typed_value('{"abc": 123, "nested": {"a": 1}}')
    worker_engine.kv.put("tests.workers", key, stored, ttl=None, description="my-description", audit=_AUDIT)

    outcome = run_task(
        _put(key, "\n      - key: def\n        value: 234\n      - key: nested.b\n        value: 2"), "t"
    )

    assert outcome.state is State.SUCCESS, outcome.error
    row = worker_engine.kv.get("tests.workers", key)
    assert row.value["v"] == {"abc": 123, "def": 234, "nested": {"a": 1, "b": 2}}
    assert row.description == "my-description"


def test_put_with_error_on_missing_fails_on_an_absent_key(run_task: Runner, worker_engine: Engine) -> None:
    """PutTest#shouldFailWhenMissingKeyAndErrorOnMissing: nothing is written."""
    key = f"k{uuid.uuid4().hex[:8]}"

    outcome = run_task(_put(key, "new-value", "\n    errorOnMissing: true"), "t")

    assert outcome.state is State.FAILED
    assert outcome.error == (
        f"No value found for key '{key}' in namespace 'tests.workers' and `errorOnMissing` is set to true"
    )
    assert all(row.key != key for row in worker_engine.kv.entries("tests.workers"))


def test_put_creates_an_absent_key_by_default(run_task: Runner, worker_engine: Engine) -> None:
    """PutTest#shouldCreateJsonOnMissingKeyByDefault."""
    key = f"k{uuid.uuid4().hex[:8]}"

    outcome = run_task(_put(key, "\n      - key: nested.def\n        value: 234"), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert worker_engine.kv.get("tests.workers", key).value["v"] == {"nested": {"def": 234}}
