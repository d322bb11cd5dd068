"""state.Set/Get/Delete and kv.GetKeys on the namespace KV store, with Kestra's keys and outputs."""

from __future__ import annotations

import uuid

from orchestrator.core.states import State
from tests.integration.workers.conftest import Runner, one_task_flow
from workers.statetasks import murmur3_128_hex, slugify


def _state(kind: str, more: str = "", *, flow_id: str = "t") -> str:
    return one_task_flow(f"    type: io.kestra.plugin.core.state.{kind}\n{more}", flow_id=flow_id)


def test_murmur3_matches_guavas_hash_string() -> None:
    # Reference values from Guava's Hashing.murmur3_128().hashString(s, UTF_8).toString().
    assert murmur3_128_hex("") == "00000000000000000000000000000000"
    assert murmur3_128_hex("foo") == "6145f501578671e2877dba2be487af7e"
    assert murmur3_128_hex("héllo wörld, 17 bytes+") == "b0b0aa2623abc38a799dfd6c59a2dff9"


def test_slugify_is_kestras() -> None:
    assert slugify("My Flow_id  x") == "my-flow-id-x"


def test_set_merges_into_the_state_and_get_reads_it_back(run_task: Runner) -> None:
    name = uuid.uuid4().hex
    first = run_task(_state("Set", f"    name: {name}\n    data:\n      a: 1\n      b: x"), "t")
    assert first.state is State.SUCCESS, first.error
    assert first.outputs == {"count": 2, "key": f"t_states_tasks-states_{name}"}

    second = run_task(_state("Set", f"    name: {name}\n    data:\n      b: '{{{{ 1 + 1 }}}}'"), "t")
    assert second.outputs is not None and second.outputs["count"] == 2

    got = run_task(_state("Get", f"    name: {name}"), "t")
    assert got.outputs == {"count": 2, "data": {"a": 1, "b": "2"}}


def test_a_missing_state_reads_empty_unless_error_on_missing(run_task: Runner) -> None:
    name = uuid.uuid4().hex
    assert run_task(_state("Get", f"    name: {name}"), "t").outputs == {"count": 0, "data": {}}

    failed = run_task(_state("Get", f"    name: {name}\n    errorOnMissing: true"), "t")

    assert failed.state is State.FAILED
    assert failed.error is not None and f"t_states_tasks-states_{name} not found" in failed.error


def test_the_state_is_per_flow_unless_namespace_is_true(run_task: Runner) -> None:
    name = uuid.uuid4().hex
    run_task(_state("Set", f"    name: {name}\n    namespace: true\n    data:\n      v: 1"), "t")

    other_flow = run_task(_state("Get", f"    name: {name}\n    namespace: true", flow_id="other"), "t")
    own_scope = run_task(_state("Get", f"    name: {name}", flow_id="other"), "t")

    assert other_flow.outputs == {"count": 1, "data": {"v": 1}}
    assert own_scope.outputs == {"count": 0, "data": {}}


def test_delete_reports_whether_it_deleted_and_fails_on_missing_when_asked(run_task: Runner) -> None:
    name = uuid.uuid4().hex
    run_task(_state("Set", f"    name: {name}\n    data:\n      v: 1"), "t")

    assert run_task(_state("Delete", f"    name: {name}"), "t").outputs == {"deleted": True}
    assert run_task(_state("Delete", f"    name: {name}"), "t").outputs == {"deleted": False}
    failed = run_task(_state("Delete", f"    name: {name}\n    errorOnMissing: true"), "t")
    assert failed.state is State.FAILED
    assert failed.error == f"Unable to find the state file '{name}'"


def test_get_keys_lists_a_namespaces_keys_by_prefix(run_task: Runner) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}"
    for suffix in ("a", "b"):
        kv_set = f"    type: io.kestra.plugin.core.kv.Set\n    key: {prefix}_{suffix}\n    value: 1"
        run_task(one_task_flow(kv_set), "t")

    listed = run_task(one_task_flow(f"    type: io.kestra.plugin.core.kv.GetKeys\n    prefix: {prefix}"), "t")

    assert listed.outputs == {"keys": [f"{prefix}_a", f"{prefix}_b"]}
