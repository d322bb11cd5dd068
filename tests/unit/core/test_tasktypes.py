"""The task catalogue: names and aliases, pools, suggestions, property models and plugin defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from orchestrator.core.flow import PluginDefault
from orchestrator.core.tasktypes import (
    CATALOGUE,
    TRIGGERS,
    Pool,
    apply_plugin_defaults,
    default_applies,
    resolve,
    resolve_trigger,
    suggest,
    suggest_trigger,
)

ROOT = Path(__file__).resolve().parents[3]


def _types_used_by_kestra_flows() -> set[str]:
    used: set[str] = set()

    def walk(value: object, key: str | None) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("type"), str) and "id" in value and key not in ("conditions", "onResume"):
                used.add(value["type"])
            for k, v in value.items():
                walk(v, k if k not in ("tasks", "then", "else", "errors", "finally", "defaults") else None)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)

    for path in (ROOT / "tests" / "fixtures" / "kestra_flows").rglob("*.yaml"):
        flow = yaml.safe_load(path.read_text())
        for section in ("tasks", "errors", "finally"):
            walk(flow.get(section), None)
    return used


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("io.kestra.plugin.core.log.Log", "Log"),
        ("io.kestra.core.tasks.log.Log", "Log"),
        ("io.kestra.core.tasks.debugs.Return", "Return"),
        ("io.kestra.core.tasks.executions.Fail", "Fail"),
        ("io.kestra.core.tasks.flows.Sequential", "Sequential"),
        ("io.kestra.core.tasks.flows.Flow", "Subflow"),
        ("io.kestra.plugin.core.flow.Subflow", "Subflow"),
        ("io.kestra.core.tasks.trigger.Toggle", "Toggle"),
        ("io.kestra.plugin.core.kv.Set", "KVSet"),
        ("io.kestra.plugin.core.storage.PurgeInternalStorage", "PurgeCurrentExecutionFiles"),  # Kestra 2's twin
        ("io.kestra.plugin.ai.openai.ChatCompletion", "ChatCompletion"),
        ("io.kestra.plugin.openai.ChatCompletion", "ChatCompletion"),
        ("io.kestra.plugin.ai.agent.AIAgent", "AIAgent"),
        ("io.kestra.plugin.notifications.jira.JiraCreate", "JiraCreate"),
        ("io.kestra.plugin.scripts.shell.Commands", "ShellCommands"),
        ("Log", "Log"),
    ],
)
def test_resolve_accepts_current_legacy_and_short_names(name: str, short: str) -> None:
    assert resolve(name).name == short


def test_resolve_raises_key_error_for_an_unknown_type() -> None:
    with pytest.raises(KeyError):
        resolve("io.kestra.plugin.jdbc.postgresql.Query")


def test_every_task_type_used_by_the_kestra_test_flows_is_in_the_catalogue() -> None:
    missing = {
        name
        for name in _types_used_by_kestra_flows()
        if name not in {n for t in CATALOGUE.values() for n in t.kestra_names}
    }
    assert missing == set()


def test_kestra_names_are_unique_across_the_catalogue() -> None:
    names = [n for t in CATALOGUE.values() for n in t.kestra_names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("short", "pool"),
    [
        ("If", Pool.CONTROL),
        ("HttpRequest", Pool.IO),
        ("SlackIncomingWebhook", Pool.IO),
        ("TeamsIncomingWebhook", Pool.IO),
        ("PythonScript", Pool.SCRIPTS),
        ("WorkingDirectory", Pool.SCRIPTS),
        ("ChatCompletion", Pool.AI),
    ],
)
def test_each_type_runs_on_its_pool(short: str, pool: Pool) -> None:
    assert CATALOGUE[short].pool is pool


def test_flowables_declare_the_fields_holding_child_tasks() -> None:
    assert CATALOGUE["If"].branch_fields == ("then", "else", "errors", "finally")
    assert CATALOGUE["Switch"].branch_fields == ("cases", "defaults", "errors", "finally")
    assert CATALOGUE["Dag"].required_branches == ("tasks",)
    assert not CATALOGUE["Log"].flowable and CATALOGUE["Sequential"].flowable


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("io.kestra.plugin.core.log.Lgo", "io.kestra.plugin.core.log.Log"),
        ("io.kestra.plugin.core.flow.Paralel", "io.kestra.plugin.core.flow.Parallel"),
        ("io.kestra.core.tasks.flows.Sleep", "io.kestra.plugin.core.flow.Sleep"),
    ],
)
def test_suggest_finds_the_closest_known_type(typo: str, expected: str) -> None:
    assert suggest(typo) == expected


def test_suggest_returns_none_when_nothing_is_close() -> None:
    assert suggest("com.example.Something") is None


def test_triggers_resolve_by_current_and_legacy_names() -> None:
    assert resolve_trigger("io.kestra.core.models.triggers.types.Schedule").name == "Schedule"
    assert resolve_trigger("io.kestra.plugin.fs.http.Trigger").name == "HttpTrigger"
    assert suggest_trigger("io.kestra.plugin.core.trigger.Webhok") == "io.kestra.plugin.core.trigger.Webhook"
    assert set(TRIGGERS) >= {"Schedule", "Webhook", "Flow"}


@pytest.mark.parametrize("short", sorted(CATALOGUE))
def test_every_property_model_refuses_unknown_properties(short: str) -> None:
    with pytest.raises(ValidationError) as raised:
        CATALOGUE[short].properties.model_validate({"noSuchProperty": 1})
    assert "noSuchProperty" in {str(e["loc"][-1]) for e in raised.value.errors() if e["type"] == "extra_forbidden"}


@pytest.mark.parametrize(
    ("short", "props"),
    [
        ("Log", {"message": ["a", "b"], "level": "WARN"}),
        ("Parallel", {"concurrent": "4"}),
        ("ForEach", {"values": "{{ outputs.list.value }}", "concurrencyLimit": 0}),
        ("Sleep", {"duration": "PT0.5S"}),
        ("HttpRequest", {"uri": "https://example.com", "method": "POST", "body": {"a": 1}}),
        ("ShellCommands", {"commands": ["echo hi"], "env": {"A": "1"}, "taskRunner": {"type": "process"}}),
        ("ChatCompletion", {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}),
    ],
)
def test_property_models_accept_what_kestra_accepts(short: str, props: dict[str, object]) -> None:
    CATALOGUE[short].properties.model_validate(props)


def test_chat_completion_needs_a_prompt_or_messages() -> None:
    with pytest.raises(ValidationError, match="needs a prompt or messages"):
        CATALOGUE["ChatCompletion"].properties.model_validate({"model": "gpt-4o-mini"})


@pytest.mark.parametrize(
    ("default_type", "applies"),
    [
        ("io.kestra.plugin.core.log.Log", True),
        ("io.kestra.core.tasks.log.Log", True),  # the legacy alias of the same type
        ("io.kestra.plugin.core", True),  # a package prefix
        ("io.kestra.plugin.core.", True),
        ("io.kestra.plugin.core.lo", False),  # not a whole package segment
        ("io.kestra.plugin.core.debug.Return", False),
    ],
)
def test_default_applies_by_name_alias_or_package_prefix(default_type: str, applies: bool) -> None:
    assert default_applies(default_type, "io.kestra.plugin.core.log.Log") is applies


def test_plugin_defaults_merge_mappings_key_by_key() -> None:
    defaults = [PluginDefault(type="io.kestra.plugin.core.http.Request", values={"headers": {"A": "1", "B": "2"}})]
    merged, sources = apply_plugin_defaults("io.kestra.plugin.core.http.Request", {"headers": {"B": "mine"}}, defaults)
    assert (merged, sources) == ({"headers": {"A": "1", "B": "mine"}}, {})


def test_a_forced_plugin_default_wins_and_is_recorded_as_the_source() -> None:
    defaults = [
        PluginDefault(type="io.kestra.plugin.core.log.Log", values={"level": "INFO"}),
        PluginDefault(type="io.kestra.plugin.core", values={"level": "ERROR", "id": "hijack"}, forced=True),
    ]
    merged, sources = apply_plugin_defaults("io.kestra.plugin.core.log.Log", {"id": "a", "level": "WARN"}, defaults)
    assert (merged, sources) == ({"id": "a", "level": "ERROR"}, {"level": 1})
