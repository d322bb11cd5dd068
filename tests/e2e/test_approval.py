"""Kestra 2's Approval on the real stack: onWait, the pause, a review, its branch and behaviours (ApprovalTest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack
from tests.harness.executions import task_runs, task_state
from tests.harness.waiting import wait_until

BASIC = """
id: approval-basic
namespace: {ns}
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    inputs:
      - id: reason
        type: STRING
        required: false
    onWait:
      - id: notify
        type: io.kestra.plugin.core.log.Log
        message: "Approval requested"
    onApprove:
      - id: approved
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.approval.url }}"
    onDeny:
      - id: denied
        type: io.kestra.plugin.core.log.Log
        message: "Denied"
    finally:
      - id: cleanup
        type: io.kestra.plugin.core.log.Log
        message: "Cleanup"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approval.decision }}"
"""

AUTO = """
id: approval-auto
namespace: {ns}
inputs:
  - id: auto
    type: BOOL
    defaults: true
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    autoApprove: "{{ inputs.auto }}"
    approveBehavior: WARN
    onWait:
      - id: notify
        type: io.kestra.plugin.core.log.Log
        message: "waiting"
    onApprove:
      - id: approved
        type: io.kestra.plugin.core.log.Log
        message: "Approved"
"""

EXPIRE = """
id: approval-expire
namespace: {ns}
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    timeout: PT1S
    expireBehavior: "{{ 'CANCEL' }}"
    onApprove:
      - id: approved
        type: io.kestra.plugin.core.log.Log
        message: "Approved"
    finally:
      - id: cleanup
        type: io.kestra.plugin.core.log.Log
        message: "Cleanup"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "after"
"""

FAILING_WAIT = """
id: approval-wait-fails
namespace: {ns}
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    onWait:
      - id: boom
        type: io.kestra.plugin.core.execution.Fail
    onApprove:
      - id: approved
        type: io.kestra.plugin.core.log.Log
        message: "Approved"
    finally:
      - id: cleanup
        type: io.kestra.plugin.core.log.Log
        message: "Cleanup"
"""


def _paused(stack: Stack, namespace: str, flow_id: str, **inputs: str) -> dict[str, Any]:
    started = stack.run(namespace, flow_id, **inputs)
    return stack.wait_for_state(started["id"], {"PAUSED", "SUCCESS", "FAILED", "CANCELLED"}, timeout_s=60)


def _review(stack: Stack, execution_id: str, body: dict[str, Any]) -> Any:
    return stack.api.post(f"/executions/{execution_id}/actions/review", json=body)


def test_an_approval_runs_on_wait_pauses_then_runs_on_approve_with_the_review_in_its_outputs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(BASIC)
    paused = _paused(stack, unique_namespace, "approval-basic")
    assert paused["state"]["current"] == "PAUSED"
    assert task_state(paused, "notify") == "SUCCESS"
    assert task_state(paused, "approval") == "PAUSED"
    assert not task_runs(paused, "cleanup")  # finally waits for the decided branch

    response = _review(
        stack, paused["id"], {"decision": "APPROVED", "comment": "looks good", "inputs": {"reason": "x"}}
    )
    assert response.status_code == 200, response.text
    again = _review(stack, paused["id"], {"decision": "DENIED", "comment": "changed my mind"})
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert again.status_code == 409, again.text  # one decision per task run
    assert done["state"]["current"] == "SUCCESS"
    outputs = task_runs(done, "approval")[0]["outputs"]
    assert outputs["decision"] == "APPROVED"
    assert outputs["comment"] == "looks good"
    assert outputs["inputs"] == {"reason": "x"}
    assert outputs["auto"] is False and "by" in outputs  # None: the stack's caller is anonymous
    assert "/executions/" in task_runs(done, "approved")[0]["outputs"]["value"]
    assert not task_runs(done, "denied")
    assert task_state(done, "cleanup") == "SUCCESS"
    assert task_runs(done, "last")[0]["outputs"]["value"] == "APPROVED"


def test_a_denial_runs_on_deny_and_cancels_the_execution_by_default(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(BASIC)
    paused = _paused(stack, unique_namespace, "approval-basic")

    no_comment = _review(stack, paused["id"], {"decision": "DENIED"})
    bad = _review(stack, paused["id"], {"decision": "MAYBE", "comment": "?"})
    assert no_comment.status_code == 422 and "comment" in no_comment.text  # commentRequired: ON_DENY
    assert bad.status_code == 422 and "decision" in bad.text
    assert _review(stack, paused["id"], {"decision": "DENIED", "comment": "no"}).status_code == 200
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert done["state"]["current"] == "CANCELLED"
    assert task_state(done, "denied") == "SUCCESS"
    assert task_state(done, "approval") == "CANCELLED"
    assert not task_runs(done, "last")


def test_a_plain_resume_approves(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(BASIC)
    paused = _paused(stack, unique_namespace, "approval-basic")

    assert stack.api.post(f"/executions/{paused['id']}/resume").status_code == 204
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert done["state"]["current"] == "SUCCESS"
    assert task_runs(done, "approval")[0]["outputs"]["decision"] == "APPROVED"


def test_auto_approve_skips_the_wait_and_the_behaviour_maps_the_state(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(AUTO)

    done = stack.run_to_end(unique_namespace, "approval-auto")
    waiting = _paused(stack, unique_namespace, "approval-auto", auto="false")

    assert done["state"]["current"] == "WARNING"  # approveBehavior: WARN
    assert "PAUSED" not in [h["state"] for h in done["state"]["histories"]]
    assert not task_runs(done, "notify")
    assert task_state(done, "approved") == "SUCCESS"
    assert task_runs(done, "approval")[0]["outputs"]["auto"] is True
    assert waiting["state"]["current"] == "PAUSED"  # rendered per execution


def test_an_approval_past_its_timeout_expires_runs_finally_and_cancels(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(EXPIRE)

    done = stack.run_to_end(unique_namespace, "approval-expire")

    assert done["state"]["current"] == "CANCELLED"
    assert task_state(done, "cleanup") == "SUCCESS"
    assert not task_runs(done, "approved") and not task_runs(done, "after")
    outputs = task_runs(done, "approval")[0]["outputs"]
    assert outputs["decision"] == "EXPIRED" and outputs["due"] and outputs["by"] is None


def test_a_failing_on_wait_fails_the_approval_without_pausing_and_runs_finally_once(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FAILING_WAIT)

    done = stack.run_to_end(unique_namespace, "approval-wait-fails")

    assert done["state"]["current"] == "FAILED"
    assert len(task_runs(done, "cleanup")) == 1
    assert not task_runs(done, "approved")
    assert "PAUSED" not in [h["state"] for h in done["state"]["histories"]]


SIBLING = """
id: approval-sibling
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: sleep
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT2S
      - id: approval
        type: io.kestra.plugin.core.flow.Approval
        approveBehavior: SUCCEED
        denyBehavior: "{{ inputs.deny }}"
        onDeny:
          - id: denied
            type: io.kestra.plugin.core.log.Log
            message: "Denied"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "after"
inputs:
  - id: deny
    type: STRING
    defaults: CANCEL
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: "cleanup"
"""

IN_LOOP = """
id: approval-in-loop
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.Loop
    values: '["a"]'
    tasks:
      - id: approval
        type: io.kestra.plugin.core.flow.Approval
        timeout: PT1S
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "done"
"""


def _decide_while_sleeping(stack: Stack, namespace: str, decision: str, **inputs: str) -> dict[str, Any]:
    paused = _paused(stack, namespace, "approval-sibling", **inputs)
    assert task_state(paused, "sleep") == "RUNNING"
    assert _review(stack, paused["id"], {"decision": decision}).status_code == 200
    return stack.wait_for_state(paused["id"], timeout_s=60)


def test_a_cancelling_denial_lets_running_siblings_finish_starts_nothing_new_and_runs_the_flow_finally(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SIBLING)

    done = _decide_while_sleeping(stack, unique_namespace, "DENIED")

    assert done["state"]["current"] == "CANCELLED"
    assert task_state(done, "sleep") == "SUCCESS"
    assert task_state(done, "denied") == "SUCCESS"
    assert task_state(done, "cleanup") == "SUCCESS"
    # The flow has a `finally`: the main task that never started is SKIPPED (Kestra's
    # ApprovalTest#shouldRunTheFlowFinallyWhenTheApprovalIsDenied); without one it has no task run at all.
    assert [t["state"]["current"] for t in task_runs(done, "after")] == ["SKIPPED"]


def test_succeed_ends_the_execution_in_success_and_kill_kills_its_running_siblings(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SIBLING)

    succeeded = _decide_while_sleeping(stack, unique_namespace, "APPROVED")
    killed = _decide_while_sleeping(stack, unique_namespace, "DENIED", deny="KILL")

    assert succeeded["state"]["current"] == "SUCCESS"
    assert [t["state"]["current"] for t in task_runs(succeeded, "after")] == ["SKIPPED"]
    assert killed["state"]["current"] == "KILLED"
    assert task_state(killed, "sleep") == "KILLED"


def test_an_approval_expiring_in_a_loop_iteration_ends_the_iteration_not_the_flow(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(IN_LOOP)

    done = stack.run_to_end(unique_namespace, "approval-in-loop")

    assert done["state"]["current"] == "SUCCESS"
    assert task_state(done, "last") == "SUCCESS"


PARALLEL = """
id: approval-parallel
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: slow
        type: io.kestra.plugin.core.flow.Approval
        allowFailure: true
        onWait:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
          - id: broken
            type: io.kestra.plugin.core.execution.Fail
        onApprove:
          - id: approvedSlow
            type: io.kestra.plugin.core.log.Log
            message: "Approved"
      - id: quick
        type: io.kestra.plugin.core.flow.Approval
        onApprove:
          - id: approvedQuick
            type: io.kestra.plugin.core.log.Log
            message: "Approved"
"""


def test_sibling_approvals_pause_together_are_decided_one_by_one_and_on_wait_no_longer_counts(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(PARALLEL)
    execution_id = stack.run(unique_namespace, "approval-parallel")["id"]

    def both_parked() -> dict[str, Any] | None:  # `quick` pauses the execution; `slow` parks once its onWait ends
        execution: dict[str, Any] = stack.api.get(f"/executions/{execution_id}").json()
        return execution if task_runs(execution, "slow") and task_state(execution, "slow") == "PAUSED" else None

    paused = wait_until(both_parked, timeout_s=30, message="`slow` parked")
    assert paused["state"]["current"] == "PAUSED" and task_state(paused, "quick") == "PAUSED", paused
    assert task_state(paused, "broken") == "FAILED"  # allowFailure: a failed onWait still asks for review

    ambiguous = _review(stack, execution_id, {"decision": "APPROVED"})
    slow = {"decision": "APPROVED", "taskRunId": task_runs(paused, "slow")[0]["id"]}
    assert _review(stack, execution_id, slow).status_code == 200
    still = stack.api.get(f"/executions/{execution_id}").json()
    assert _review(stack, execution_id, {"decision": "APPROVED"}).status_code == 200  # the only one left
    done = stack.wait_for_state(execution_id, timeout_s=60)

    assert ambiguous.status_code == 409 and "taskRunId" in ambiguous.text
    assert still["state"]["current"] == "PAUSED"  # another approval still waits
    assert done["state"]["current"] == "SUCCESS"  # the failed onWait is not the decided branch's
    assert task_state(done, "approvedSlow") == task_state(done, "approvedQuick") == "SUCCESS"


def test_kestra_2s_review_names_the_task_run_and_decision_in_the_query_and_the_comment_in_a_multipart_part(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # webserver ExecutionController#reviewExecution: ?taskRunId&decision=APPROVE|DENY, multipart `comment` + inputs.
    deploy_flow(BASIC)
    paused = _paused(stack, unique_namespace, "approval-basic")
    path = f"/executions/{paused['id']}/actions/review"
    approval = task_runs(paused, "approval")[0]["id"]
    notify = task_runs(paused, "notify")[0]["id"]

    unknown = stack.api.post(path, params={"taskRunId": "nope", "decision": "DENY"}, files={"comment": (None, "x")})
    not_an_approval = stack.api.post(
        path, params={"taskRunId": notify, "decision": "DENY"}, files={"comment": (None, "x")}
    )
    too_long = stack.api.post(
        path, params={"taskRunId": approval, "decision": "DENY"}, files={"comment": (None, "x" * 4097)}
    )
    no_comment = stack.api.post(path, params={"taskRunId": approval, "decision": "DENY"})  # commentRequired: ON_DENY
    denied = stack.api.post(
        path, params={"taskRunId": approval, "decision": "DENY"}, files={"comment": (None, "no"), "reason": (None, "r")}
    )
    twice = stack.api.post(path, params={"taskRunId": approval, "decision": "APPROVE"}, files={"comment": (None, "ok")})
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert unknown.status_code == 404, unknown.text
    assert not_an_approval.status_code == 422 and "not an Approval" in not_an_approval.text
    assert too_long.status_code == 422 and "4096" in too_long.text
    assert no_comment.status_code == 422 and "comment" in no_comment.text
    assert denied.status_code == 200, denied.text
    assert twice.status_code == 409 and "not paused" in twice.text
    assert done["state"]["current"] == "CANCELLED"
    outputs = task_runs(done, "approval")[0]["outputs"]
    assert (outputs["decision"], outputs["comment"], outputs["inputs"]) == ("DENIED", "no", {"reason": "r"})


FLOW_FINALLY = """
id: approval-flow-finally
namespace: {ns}
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    onDeny:
      - id: denied
        type: io.kestra.plugin.core.log.Log
        message: "Denied"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "after"
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: "cleanup"
"""


def test_a_cancelled_approval_request_cancels_the_execution_at_once_without_branch_nor_finally(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # ApprovalTest#shouldCancelTheExecutionWithoutRunningAnyBranchWhenTheApprovalIsCancelled and
    # #shouldNotRunTheFlowFinallyWhenTheApprovalIsCancelled (POST /actions/cancel-approval?taskRunId=).
    deploy_flow(FLOW_FINALLY)
    paused = _paused(stack, unique_namespace, "approval-flow-finally")
    path = f"/executions/{paused['id']}/actions/cancel-approval"
    approval = task_runs(paused, "approval")[0]["id"]

    unknown = stack.api.post(path, params={"taskRunId": "nope"})
    cancelled = stack.api.post(path, params={"taskRunId": approval})
    again = stack.api.post(path, params={"taskRunId": approval})
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert unknown.status_code == 404, unknown.text
    assert cancelled.status_code == 200, cancelled.text
    assert again.status_code == 409, again.text  # it ended: nothing is paused any more
    assert done["state"]["current"] == "CANCELLED"
    assert task_state(done, "approval") == "CANCELLED"
    assert not task_runs(done, "denied") and not task_runs(done, "after") and not task_runs(done, "cleanup")


MIX = """
id: approval-pause-mix
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: approval
        type: io.kestra.plugin.core.flow.Approval
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
"""


def test_a_plain_resume_resumes_the_pause_beside_an_approval_which_stays_paused_for_its_review(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # ApprovalTest#shouldResumeThePauseWhateverTheOrderOfAnApprovalPausedBesideIt (findPausedTaskRunToResume).
    deploy_flow(MIX)
    paused = _paused(stack, unique_namespace, "approval-pause-mix")
    assert paused["state"]["current"] == "PAUSED"

    assert stack.api.post(f"/executions/{paused['id']}/resume").status_code == 204

    def pause_ended() -> dict[str, Any] | None:
        execution: dict[str, Any] = stack.api.get(f"/executions/{paused['id']}").json()
        return execution if task_state(execution, "pause") == "SUCCESS" else None

    resumed = wait_until(pause_ended, timeout_s=30, message="the Pause resumed")
    assert resumed["state"]["current"] == "PAUSED" and task_state(resumed, "approval") == "PAUSED"
    assert stack.api.post(f"/executions/{paused['id']}/resume").status_code == 204  # only the Approval is left
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert done["state"]["current"] == "SUCCESS"
    assert task_runs(done, "approval")[0]["outputs"]["decision"] == "APPROVED"


WAITING_SIBLINGS = """
id: approval-waiting-siblings
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: slow
        type: io.kestra.plugin.core.flow.Approval
        onWait:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT2S
      - id: quick
        type: io.kestra.plugin.core.flow.Approval
"""


def test_the_execution_reads_paused_once_no_sibling_approval_still_runs_its_on_wait(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # ApprovalTest#shouldPauseSiblingApprovalsIndependently: Kestra's execution is PAUSING while an onWait runs.
    deploy_flow(WAITING_SIBLINGS)
    started = stack.run(unique_namespace, "approval-waiting-siblings")

    def quick_parked() -> dict[str, Any] | None:
        execution: dict[str, Any] = stack.api.get(f"/executions/{started['id']}").json()
        return execution if task_runs(execution, "quick") and task_state(execution, "quick") == "PAUSED" else None

    early = wait_until(quick_parked, timeout_s=30, message="`quick` parked")
    paused = stack.wait_for_state(started["id"], {"PAUSED"}, timeout_s=30)

    assert early["state"]["current"] == "RUNNING" or task_state(early, "slow") == "PAUSED", early
    assert task_state(paused, "slow") == task_state(paused, "quick") == "PAUSED"
