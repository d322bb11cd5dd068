"""core.log.Log: a message list may hold numbers and booleans; each element is logged as Kestra writes it."""

from __future__ import annotations

from orchestrator.core.states import State
from tests.integration.workers.conftest import Runner, one_task_flow


def test_non_string_list_elements_are_logged_as_kestra_writes_them(run_task: Runner) -> None:
    """LogTest#shouldLogNonStringMessageListElementsInsteadOfCrashing: "hello", "42", "true"."""
    flow = one_task_flow(
        "    type: io.kestra.plugin.core.log.Log\n    message:\n      - hello\n      - 42\n      - true\n"
        '      - "{{ [1, 2] }}"'
    )

    outcome = run_task(flow, "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert [record.message for record in outcome.logs] == ["hello", "42", "true", "[1,2]"]


def test_a_list_element_that_cannot_render_fails_the_task(run_task: Runner) -> None:
    outcome = run_task(
        one_task_flow('    type: io.kestra.plugin.core.log.Log\n    message:\n      - "{{ nope }}"'), "t"
    )

    assert outcome.state is State.FAILED
    assert outcome.error is not None and "nope" in outcome.error
