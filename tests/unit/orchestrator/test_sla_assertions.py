"""EXECUTION_ASSERTION SLAs: which assertions an execution violates (Kestra's ExecutionAssertionSLA)."""

from __future__ import annotations

from orchestrator.core.parse import parse_flow
from orchestrator.engine.sla_assertions import assertions, violations

FLOW = parse_flow(
    """
id: sla-execution-condition
namespace: io.kestra.tests
inputs:
  - id: string
    type: SELECT
    values: [PASS, CANCEL, LABEL]
    defaults: PASS
sla:
  - id: cancel
    type: EXECUTION_ASSERTION
    behavior: CANCEL
    assert: "{{inputs.string != 'CANCEL'}}"
  - id: label
    type: EXECUTION_ASSERTION
    behavior: NONE
    assert: "{{inputs.string != 'LABEL'}}"
    labels:
      sla: violated
  - id: slow
    type: MAX_DURATION
    behavior: FAIL
    duration: PT1H
tasks:
  - id: return
    type: io.kestra.plugin.core.debug.Return
    format: "true"
"""
)


def test_only_execution_assertions_are_evaluated_on_change() -> None:
    assert [entry["id"] for entry in assertions(FLOW)] == ["cancel", "label"]


def test_an_assertion_that_renders_falsy_is_violated_in_declaration_order() -> None:
    assert violations(FLOW, {"inputs": {"string": "PASS"}}) == []
    assert [v["id"] for v in violations(FLOW, {"inputs": {"string": "CANCEL"}})] == ["cancel"]
    assert [v["id"] for v in violations(FLOW, {"inputs": {"string": "LABEL"}})] == ["label"]


def test_an_assertion_that_cannot_render_is_skipped() -> None:
    assert violations(FLOW, {}) == []
