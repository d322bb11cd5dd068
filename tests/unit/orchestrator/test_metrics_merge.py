"""Merging another process's /metrics into this one's exposition (`orchestrator.observability.metrics_merge`)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from orchestrator.cli.embedded import free_port
from orchestrator.observability.metrics_merge import _merge, merged_registry


def _registry(value: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("chorus_things", "Things.", ["kind"], registry=registry).labels("a").inc(value)
    Histogram("chorus_wait_seconds", "Waits.", buckets=(1,), registry=registry).observe(value)
    return registry


def test_samples_of_the_same_families_are_merged_under_a_source_label_and_each_family_is_declared_once() -> None:
    local = _registry(1)
    families = {family.name: family for family in local.collect()}
    remote = text_string_to_metric_families(generate_latest(_registry(2)).decode())

    _merge(families, remote, "workers")

    merged = CollectorRegistry(auto_describe=False)
    merged.register(_Fixed(list(families.values())))
    text = generate_latest(merged).decode()
    declared = [line for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(declared) == len(set(declared))
    assert 'chorus_things_total{kind="a"} 1.0' in text
    assert 'chorus_things_total{kind="a",source="workers"} 2.0' in text
    assert 'chorus_wait_seconds_count{source="workers"} 1.0' in text


def test_a_source_that_does_not_answer_is_counted_and_the_local_metrics_still_served() -> None:
    registry = merged_registry(_registry(1), [("workers", f"http://127.0.0.1:{free_port()}/metrics")])

    text = generate_latest(registry).decode()

    assert 'chorus_things_total{kind="a"} 1.0' in text
    assert 'chorus_metrics_merge_failures{source="workers"} 1.0' in text


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
