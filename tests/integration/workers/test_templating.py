"""templating.TemplatedTask runs the task its rendered spec describes; metric.Publish outputs its metrics."""

from __future__ import annotations

from orchestrator.core.states import State
from tests.integration.workers.conftest import Runner, one_task_flow


def _templated(spec: str) -> str:
    return one_task_flow(f"    type: io.kestra.plugin.core.templating.TemplatedTask\n    spec: |\n{spec}")


def test_a_templated_task_runs_the_rendered_task_in_its_place(run_task: Runner) -> None:
    spec = (
        "      type: io.kestra.plugin.core.debug.Return\n      format: \"{{ '{{' }} task.id {{ '}}' }} > {{ 1 + 1 }}\""
    )

    outcome = run_task(_templated(spec), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs == {"value": "t > 2"}


def test_a_templated_task_cannot_template_itself_or_a_flowable(run_task: Runner) -> None:
    itself = run_task(_templated("      type: io.kestra.plugin.core.templating.TemplatedTask\n      spec: x"), "t")
    flowable = run_task(_templated("      type: io.kestra.plugin.core.flow.Sequential\n      tasks: []"), "t")

    assert itself.state is State.FAILED
    assert itself.error == "The templated task cannot be of type 'io.kestra.plugin.core.templating.TemplatedTask'"
    assert flowable.state is State.FAILED
    assert flowable.error == "The templated task must be a runnable task"


def test_a_templated_task_with_an_invalid_property_fails(run_task: Runner) -> None:
    outcome = run_task(_templated("      type: io.kestra.plugin.core.debug.Return\n      nope: 1"), "t")

    assert outcome.state is State.FAILED
    assert outcome.error is not None and "nope" in outcome.error


def test_publish_outputs_counters_and_timers(run_task: Runner) -> None:
    metrics = (
        '    metrics:\n      - type: counter\n        name: rows\n        value: "{{ 40 + 2 }}"\n'
        "        tags:\n          source: db\n      - type: timer\n        name: took\n        value: PT1.5S\n"
    )

    outcome = run_task(one_task_flow(f"    type: io.kestra.plugin.core.metric.Publish\n{metrics}"), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs == {
        "metrics": [
            {"name": "rows", "type": "counter", "value": 42, "tags": {"source": "db"}},
            {"name": "took", "type": "timer", "value": 1.5, "tags": {}},
        ]
    }


def test_publish_refuses_a_counter_that_is_no_number(run_task: Runner) -> None:
    metrics = "    metrics:\n      - type: counter\n        name: rows\n        value: many\n"

    outcome = run_task(one_task_flow(f"    type: io.kestra.plugin.core.metric.Publish\n{metrics}"), "t")

    assert outcome.state is State.FAILED
    assert outcome.error == "metrics: counter 'rows' needs a number, got 'many'"


def test_what_the_spec_prints_from_data_stays_data(run_task: Runner) -> None:
    # Kestra renders the spec, then the task renders its properties again: an input holding an expression (or a
    # line break and more YAML) would be run as the author's code. Here it is printed as given.
    spec = '      type: io.kestra.plugin.core.debug.Return\n      format: "{{ trigger.body.text }}"'
    text = '{{ flow.namespace }}-{{ 7 * 7 }}"\nnope: 1'

    outcome = run_task(_templated(spec), "t", trigger={"body": {"text": text}})

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs == {"value": text}


def test_a_value_printed_whole_keeps_its_structure(run_task: Runner) -> None:
    spec = "      type: io.kestra.plugin.core.output.OutputValues\n      values: {{ trigger.body.values }}"

    outcome = run_task(_templated(spec), "t", trigger={"body": {"values": {"a": "{{ 1 + 1 }}", "b": [1, 2]}}})

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs == {"values": {"a": "{{ 1 + 1 }}", "b": [1, 2]}}
