"""Dashboard lint: unique panel ids, the datasource variable everywhere, no hard-coded instance, known metrics."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from orchestrator.observability.metrics import Metrics
from tests.harness.dashboards import DASHBOARDS, load_all, panels, queries

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Series Prometheus makes itself or collectors emit outside `Metrics`.
EXTRA_SERIES = {
    "up",
    "chorus_queue_depth_messages",
    "chorus_queue_oldest_message_age_seconds",
    "chorus_executions",
    "chorus_executions_stuck",
    "chorus_llm_budget_limit",
    "chorus_llm_budget_used",
    "chorus_llm_budget_reserved",
    "chorus_llm_budget_remaining",
}
_SERIES = re.compile(r"\b(chorus_[a-z0-9_]+|gen_ai_client_[a-z0-9_]+|up)\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _known_series() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]} | EXTRA_SERIES


def test_there_are_the_four_dashboards() -> None:
    assert set(load_all()) == {
        "chorus-overview.json",
        "chorus-pools.json",
        "chorus-executions.json",
        "chorus-ai.json",
    }


@pytest.mark.parametrize("name", sorted(load_all()))
def test_panel_ids_are_unique_within_a_dashboard(name: str) -> None:
    ids = [panel["id"] for panel in panels(load_all()[name])]

    assert len(ids) == len(set(ids))


def test_dashboard_uids_are_unique() -> None:
    uids = [d["uid"] for d in load_all().values()]

    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(load_all()))
def test_every_panel_and_query_takes_the_datasource_variable(name: str) -> None:
    dashboard = load_all()[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


@pytest.mark.parametrize("name", sorted(load_all()))
def test_no_query_names_an_instance_or_a_host(name: str) -> None:
    for text in _strings(load_all()[name]):
        assert "instance=" not in text and "instance =" not in text, text
        assert not re.search(r"\b(localhost|127\.0\.0\.1|\d+\.\d+\.\d+\.\d+:\d+)\b", text), text


def test_every_query_uses_only_series_chorus_exposes() -> None:
    known = _known_series()
    for query in queries():
        unknown = set(_SERIES.findall(query.expr)) - known
        assert not unknown, f"{query.dashboard} panel {query.panel_id} ({query.panel_title}): {sorted(unknown)}"


def test_every_metric_is_named_chorus_something_or_by_the_gen_ai_conventions() -> None:
    # gen_ai_client_* keep OpenTelemetry's GenAI names (gen_ai.client.token.usage, ...), which GenAI tools know.
    for name in _known_series() - {"up"}:
        assert name.startswith(("chorus_", "gen_ai_client_")), name


def test_provisioning_points_grafana_at_the_dashboards_folder() -> None:
    provider = yaml.safe_load((DASHBOARDS.parent / "provisioning" / "dashboards" / "chorus.yaml").read_text())
    datasource = yaml.safe_load((DASHBOARDS.parent / "provisioning" / "datasources" / "prometheus.yaml").read_text())

    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/chorus"
    assert datasource["datasources"][0]["type"] == "prometheus"
