"""Valid flows: Kestra's own test flows and the examples parse, into the model the rest of Chorus reads."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.core.flow import Flow, InputType, Label
from orchestrator.core.parse import parse_flow

ROOT = Path(__file__).resolve().parents[3]
KESTRA_FLOWS = sorted((ROOT / "tests" / "fixtures" / "kestra_flows").rglob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _flow(text: str) -> Flow:
    return parse_flow(textwrap.dedent(text))


def _fixture(name: str) -> Flow:
    return parse_flow((ROOT / "tests" / "fixtures" / "kestra_flows" / name).read_text())


def test_the_kestra_fixture_set_is_complete() -> None:
    assert len(KESTRA_FLOWS) >= 98


@pytest.mark.parametrize("path", KESTRA_FLOWS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_kestra_test_flow_parses(path: Path) -> None:
    flow = parse_flow(path.read_text())
    assert flow.key == f"{path.parent.name}.{flow.id}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_flow_parses(path: Path) -> None:
    flow = parse_flow(path.read_text())
    assert flow.tasks


def test_tasks_carry_short_type_written_type_and_position() -> None:
    flow = _fixture("io.kestra.tests/if.yaml")
    task = flow.task("if-1")
    assert (task.type, task.type_name, task.line, task.column) == ("If", "io.kestra.plugin.core.flow.If", 19, 9)


def test_iter_tasks_walks_every_section_depth_first() -> None:
    flow = _fixture("io.kestra.tests/all-flowable.yaml")
    ids = [t.id for t in flow.iter_tasks()]
    assert ids[:6] == ["1-each", "1-each-1", "1-each-2", "1-each-2-1", "1-each-seq-error", "1-each-seq-error-1"]
    assert ids[-2:] == ["error-1st", "error-2nd"]


def test_task_lookup_raises_key_error_for_an_unknown_id() -> None:
    with pytest.raises(KeyError):
        _fixture("io.kestra.tests/return.yaml").task("nope")


def test_switch_cases_become_named_branches_in_yaml_order() -> None:
    switch = _fixture("io.kestra.tests/switch.yaml").task("parent-seq")
    assert list(switch.branches) == ["cases.FIRST", "cases.SECOND", "cases.THIRD", "defaults"]
    assert [t.id for t in switch.branches["cases.SECOND"]] == ["t2", "t2_sub"]
    assert switch.properties == {"value": "{{inputs.string}}"}


def test_switch_case_keys_are_kept_as_written() -> None:
    inner = _fixture("io.kestra.tests/each-switch.yaml").task("2-1-1_switch")
    assert list(inner.branches) == ["cases.1", "cases.2"]


def test_if_has_then_and_else_branches() -> None:
    task = _fixture("io.kestra.tests/if-condition.yaml").task("if")
    assert {k: [t.id for t in v] for k, v in task.branches.items()} == {"then": ["when-true"], "else": ["when-false"]}


def test_dag_children_keep_their_depends_on() -> None:
    dag = _fixture("io.kestra.tests/dag.yaml").task("dag")
    assert dag.description == "my task"
    assert {t.id: t.depends_on for t in dag.branches["tasks"]}["task5"] == ("task4", "task3")


def test_flowable_errors_are_a_branch_of_their_task() -> None:
    seq = _fixture("io.kestra.tests/sequential-with-local-errors.yaml").task("t2_seq")
    assert [t.id for t in seq.branches["errors"]] == ["error-t1", "error-t2"]


def test_retry_uses_kestra_names_and_iso_durations() -> None:
    retry = _fixture("io.kestra.tests/retry-expo.yaml").task("failed").retry
    assert retry is not None
    assert (retry.type, retry.max_attempts, retry.interval, retry.max_interval, retry.max_duration) == (
        "exponential",
        3,
        timedelta(milliseconds=250),
        timedelta(seconds=5),
        timedelta(seconds=15),
    )


def test_flow_level_retry_and_behavior_are_read() -> None:
    retry = _fixture("io.kestra.tests/retry-new-execution-flow-duration.yaml").retry
    assert retry is not None and retry.behavior == "CREATE_NEW_EXECUTION"


def test_common_task_properties_are_lifted_out_of_properties() -> None:
    task = _fixture("io.kestra.tests/task-allow-warning-runnable.yaml").task("fail")
    assert (task.allow_failure, task.allow_warning, task.properties) == (True, True, {})


def test_run_if_and_log_level_are_read() -> None:
    assert _fixture("io.kestra.tests/task-runif.yaml").task("executed").run_if == (
        "{{ outputs.output['values']['taskrun_data'] == 1 }}"
    )
    assert _fixture("io.kestra.tests/logs.yaml").task("t4").log_level == "INFO"


def test_labels_are_read_from_a_map() -> None:
    flow = _fixture("io.kestra.tests/logs.yaml")
    assert flow.labels == (Label(key="country", value="FR"), Label(key="region", value="Nord"))


def test_labels_are_read_from_a_list_of_key_value_pairs() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        labels:
          - key: team
            value: data
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        """
    )
    assert flow.labels == (Label(key="team", value="data"),)


def test_legacy_task_defaults_are_applied_like_plugin_defaults() -> None:
    flow = _fixture("io.kestra.tests/logs.yaml")
    assert flow.plugin_defaults[0].type == "io.kestra.plugin.core.log.Log"


def test_plugin_defaults_fill_missing_properties_before_validation() -> None:
    flow = parse_flow((ROOT / "examples" / "customer-feedback-analysis.deploy.yaml").read_text())
    props = flow.task("analyze-sentiment").properties
    assert props["model"] == "gpt-4o-mini" and props["apiKey"] == "{{ secret('OPENAI_API_KEY') }}"


def test_a_task_value_wins_over_a_non_forced_default() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: mine
        pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            values: {message: theirs, level: WARN}
        """
    )
    assert flow.task("a").properties == {"message": "mine", "level": "WARN"}


def test_a_forced_default_overrides_the_task() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.core.tasks.log.Log
            message: mine
        pluginDefaults:
          - type: io.kestra.plugin.core
            forced: true
            values: {message: theirs}
        """
    )
    assert flow.task("a").properties == {"message": "theirs"}


def test_a_default_for_another_type_is_not_applied() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.debug.Return
        pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            values: {message: hi}
        """
    )
    assert flow.task("a").properties == {}


def test_inputs_keep_kestra_defaults_and_constraints() -> None:
    inputs = {i.id: i for i in _fixture("io.kestra.tests/inputs.yaml").inputs}
    assert inputs["string"].required is True
    assert (inputs["validatedInt"].min, inputs["validatedInt"].max) == (10, 20)
    assert inputs["array"].item_type is InputType.INT
    assert inputs["secret"].id == "secret"  # declared with the legacy `name`
    assert inputs["yaml"].defaults == {
        "property": "something",
        "list": [{"key": "key1", "value": "value1"}, {"key": "key2", "value": "value2"}],
    }


def test_triggers_are_read_with_their_short_type() -> None:
    trigger = _fixture("io.kestra.tests/webhook.yaml").triggers[0]
    assert (trigger.id, trigger.type, trigger.properties, trigger.line) == (
        "webhook",
        "Webhook",
        {"key": "a-secret-key"},
        14,
    )


def test_legacy_http_trigger_resolves_to_the_http_trigger() -> None:
    assert _fixture("io.kestra.tests/http-listen.yaml").triggers[0].type == "HttpTrigger"


def test_flow_outputs_keep_their_raw_value() -> None:
    output = _fixture("io.kestra.tests/flow-with-array-outputs.yaml").outputs[0]
    assert (output.id, output.type, output.value) == (
        "myout",
        InputType.ARRAY,
        ["{{ outputs.return.values.one }}", "{{ outputs.return.values.two }}"],
    )


def test_concurrency_is_read() -> None:
    concurrency = _fixture("io.kestra.tests/flow-concurrency-cancel-pause.yaml").concurrency
    assert concurrency is not None and (concurrency.limit, concurrency.behavior) == (1, "CANCEL")


def test_the_finally_and_after_execution_sections_are_read() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: a}
        finally:
          - {id: b, type: io.kestra.plugin.core.log.Log, message: b}
        afterExecution:
          - {id: c, type: io.kestra.plugin.core.log.Log, message: c}
        """
    )
    assert ([t.id for t in flow.finally_], [t.id for t in flow.after_execution]) == (["b"], ["c"])
    assert [t.id for t in flow.iter_tasks()] == ["a", "b", "c"]


def test_expressions_are_accepted_where_kestra_takes_dynamic_values() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: "{{ inputs.width }}"
            tasks:
              - {id: s, type: io.kestra.plugin.core.flow.Sleep, duration: "{{ inputs.wait }}"}
        """
    )
    assert flow.task("p").properties == {"concurrent": "{{ inputs.width }}"}


def test_a_task_in_the_scripts_pool_keeps_its_script_properties() -> None:
    flow = _flow(
        """
        id: f
        namespace: ns
        tasks:
          - id: py
            type: io.kestra.plugin.scripts.python.Script
            containerImage: python:3.11
            beforeCommands: [pip install requests]
            script: print("hi")
            timeout: PT2M
        """
    )
    task = flow.task("py")
    assert (task.type, task.timeout, task.properties["script"]) == ("PythonScript", timedelta(minutes=2), 'print("hi")')


def test_on_off_yes_no_are_strings_as_in_kestra() -> None:
    flow = parse_flow("id: off\nnamespace: n\ntasks:\n  - id: on\n    type: Log\n    message: yes\n")

    assert (flow.id, flow.tasks[0].id, flow.tasks[0].properties["message"]) == ("off", "on", "yes")
