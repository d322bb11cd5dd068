"""The labels a Flow trigger gives the execution it starts (Kestra 2's FlowTest#success, #success_withLabels)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import render_value
from orchestrator.core.trigger_labels import execution_labels, flow_trigger_labels

UPSTREAM = {"execution-label": "execution", "system.correlationId": "correlationId"}


def _render(value: Any) -> Any:
    return render_value(value, {})


def test_rendered_trigger_labels_then_the_upstream_correlation_label() -> None:
    raw = {
        "trigger-label-1": "trigger-label-1",
        "trigger-label-2": "{{ 'trigger-label-2' }}",
        "trigger-label-3": "{{ null }}",  # renders to nothing: left out
        "trigger-label-4": "{{ foobar }}",  # cannot render: left out, the start goes on
    }

    labels = flow_trigger_labels(raw, UPSTREAM, _render)

    assert labels == [
        {"key": "trigger-label-1", "value": "trigger-label-1"},
        {"key": "trigger-label-2", "value": "trigger-label-2"},
        {"key": "system.correlationId", "value": "correlationId"},
    ]


def test_a_list_of_key_value_pairs_and_an_upstream_without_correlation() -> None:
    labels = flow_trigger_labels([{"key": "n", "value": 1}, {"key": "b", "value": True}], {}, _render)

    assert labels == [{"key": "n", "value": "1"}, {"key": "b", "value": "true"}]


def test_no_labels_only_the_correlation_label() -> None:
    assert flow_trigger_labels(None, UPSTREAM, _render) == [{"key": "system.correlationId", "value": "correlationId"}]


def test_a_failure_other_than_rendering_is_not_swallowed() -> None:
    def broken(value: Any) -> Any:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):  # a bug is not hidden as an omitted label
        flow_trigger_labels({"k": "v"}, {}, broken)


def test_execution_labels_are_the_upstream_labels_without_system_ones() -> None:
    assert execution_labels(UPSTREAM) == {"execution-label": "execution"}


def test_render_errors_are_expression_errors() -> None:
    """The omission above relies on an undefined variable raising a ChorusError."""
    with pytest.raises(ExpressionError):
        _render("{{ foobar }}")
