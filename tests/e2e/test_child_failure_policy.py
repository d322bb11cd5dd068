"""`childFailurePolicy` (kestra-io/kestra#15366) on Parallel and ForEach with real workers: FAIL_FAST kills the
running siblings, STOP lets them finish, CONTINUE keeps starting the others; none of them starts anything new but
CONTINUE, and the parent fails in every case after its `errors` ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_kestra_conformance import MORE, _run_conformance
from tests.harness.executions import task_runs

# `concurrent: 2` deals the children over two lanes: [slow, after_slow] and [late, after_late]. `late` fails after
# a second while `slow` (a parked Sleep) still runs; `after_slow` and `after_late` would start after that.
PARALLEL = """
id: parallel-policy
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    POLICY
    tasks:
      - {id: slow, type: io.kestra.plugin.core.flow.Sleep, duration: SLOW}
      - id: late
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}
          - {id: boom, type: io.kestra.plugin.core.execution.Fail}
      - {id: after_slow, type: io.kestra.plugin.core.log.Log, message: after slow}
      - {id: after_late, type: io.kestra.plugin.core.log.Log, message: after late}
    errors:
      - {id: handler, type: io.kestra.plugin.core.log.Log, message: handled}
"""

# Two iterations at a time: lanes [1, 3] and [2, 4]. Iteration "1" fails after a second while "2" sleeps.
FOR_EACH = """
id: foreach-policy
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["1", "2", "3", "4"]
    concurrencyLimit: 2
    POLICY
    tasks:
      - id: step
        type: io.kestra.plugin.core.flow.If
        condition: "{{ taskrun.value == '1' }}"
        then:
          - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}
          - {id: boom, type: io.kestra.plugin.core.execution.Fail}
        else:
          - {id: work, type: io.kestra.plugin.core.flow.Sleep, duration: SLOW}
    errors:
      - {id: handler, type: io.kestra.plugin.core.log.Log, message: handled}
"""


def _run(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], source: str, flow_id: str, ns: str) -> Any:
    deploy_flow(source)
    done = stack.wait_for_state(stack.run(ns, flow_id)["id"], timeout_s=90)
    assert done["state"]["current"] == "FAILED"
    assert [r["state"]["current"] for r in task_runs(done, "handler")] == ["SUCCESS"]
    return done


def _states(execution: Any, task_id: str) -> list[str]:
    return sorted(r["state"]["current"] for r in task_runs(execution, task_id))


@pytest.mark.parametrize(
    ("policy", "slow", "after_slow", "after_late"),
    [
        ("childFailurePolicy: FAIL_FAST", ["KILLED"], [], []),
        ("childFailurePolicy: stop", ["SUCCESS"], [], []),
        ("childFailurePolicy: Continue", ["SUCCESS"], ["SUCCESS"], ["SUCCESS"]),
        ("", ["SUCCESS"], ["SUCCESS"], []),  # absent: Chorus's own behaviour, each lane stops at its failure
    ],
)
def test_a_parallel_applies_its_child_failure_policy(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    policy: str,
    slow: list[str],
    after_slow: list[str],
    after_late: list[str],
) -> None:
    # A parked Sleep long enough that a loaded machine still fails `late` well before `slow` ends.
    source = PARALLEL.replace("POLICY", policy).replace("SLOW", "PT40S" if "FAIL_FAST" in policy else "PT4S")

    done = _run(stack, deploy_flow, source, "parallel-policy", unique_namespace)

    assert _states(done, "parallel") == ["FAILED"]
    assert _states(done, "late") == ["FAILED"]
    assert _states(done, "slow") == slow
    assert _states(done, "after_slow") == after_slow
    assert _states(done, "after_late") == after_late


@pytest.mark.parametrize(
    ("policy", "steps"),
    [
        ("childFailurePolicy: FAIL_FAST", {"1": "FAILED", "2": "KILLED"}),  # "3" and "4" never start
        ("childFailurePolicy: STOP", {"1": "FAILED", "2": "SUCCESS"}),  # "3" and "4" never start
        ("childFailurePolicy: CONTINUE", {"1": "FAILED", "2": "SUCCESS", "3": "SUCCESS", "4": "SUCCESS"}),
        ("", {"1": "FAILED", "2": "SUCCESS", "4": "SUCCESS"}),  # absent: the lane of "2" goes on, that of "1" stops
    ],
)
def test_a_concurrent_for_each_applies_its_child_failure_policy(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    policy: str,
    steps: dict[str, str],
) -> None:
    source = FOR_EACH.replace("POLICY", policy).replace("SLOW", "PT40S" if "FAIL_FAST" in policy else "PT3S")

    done = _run(stack, deploy_flow, source, "foreach-policy", unique_namespace)

    assert _states(done, "each") == ["FAILED"]
    assert {r["value"]: r["state"]["current"] for r in task_runs(done, "step")} == steps


def test_validation_warns_that_a_sequential_for_each_ignores_the_policy(stack: Stack, unique_namespace: str) -> None:
    source = FOR_EACH.replace("    concurrencyLimit: 2\n", "").replace("POLICY", "childFailurePolicy: CONTINUE")
    source = source.replace("SLOW", "PT1S")

    response = stack.api.post(
        "/flows/validate",
        content=source.replace("{ns}", unique_namespace),
        headers={"Content-Type": "application/x-yaml"},
    )

    assert response.status_code == 200, response.text
    [verdict] = response.json()
    assert verdict["constraints"] is None, verdict
    [warning] = verdict["warnings"]
    line = source.splitlines().index("    childFailurePolicy: CONTINUE") + 1
    assert warning.startswith(f"tasks[0].childFailurePolicy (line {line}, column 5): childFailurePolicy has no effect")


def test_an_unknown_policy_is_refused_naming_the_field(stack: Stack, unique_namespace: str) -> None:
    source = PARALLEL.replace("POLICY", "childFailurePolicy: SOMETIMES").replace("SLOW", "PT1S")

    response = stack.api.post(
        "/flows",
        content=source.replace("{ns}", unique_namespace),
        headers={"Content-Type": "application/x-yaml"},
    )

    assert response.status_code == 422, response.text
    [error] = response.json()["_embedded"]["errors"]
    assert error["path"] == "tasks[0].childFailurePolicy"
    assert "FAIL_FAST, STOP or CONTINUE" in error["message"]


#: Kestra 2.x test flows that set `childFailurePolicy: STOP` on a concurrent ForEach, and one with `listeners`.
CONFORMANCE = (
    "io.kestra.tests/finally-foreach",
    "io.kestra.tests/finally-eachparallel",
    "io.kestra.tests/each-error",
    "io.kestra.tests/after-execution-listener",
)


@pytest.mark.timeout(300)
def test_kestras_flows_with_a_policy_or_listeners_behave_as_kestras_tests_assert(stack: Stack, tmp_path: Path) -> None:
    only = [arg for key in CONFORMANCE for arg in ("--only", key)]

    result, outcome = _run_conformance(stack, tmp_path, "--manifest", str(MORE / "manifest-k2ak.json"), *only)

    statuses = {r["case"]: r["status"] for r in outcome["results"]}
    assert {case.split("#")[0] for case in statuses} == set(CONFORMANCE), result.stdout
    assert set(statuses.values()) == {"PASS"}, result.stdout
    assert len(statuses) == 6, result.stdout  # the two ForEach flows run with and without a failure
