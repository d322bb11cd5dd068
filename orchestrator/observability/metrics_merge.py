"""Other processes' `/metrics` merged into this process's exposition (how `chorus local`'s API shows its worker's).

The Prometheus text format allows each metric family once, and the API and the workers declare the same
families (`observability.metrics.Metrics`), so the other side's samples are added to this side's families with a
`source` label rather than appended as text. A source that does not answer is left out and counted in
`chorus_metrics_merge_failures`, so a scrape never fails because a worker is restarting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

logger = logging.getLogger(__name__)

SOURCE_LABEL = "source"
_FETCH_TIMEOUT_S = 2.0
_CREATED = "_created"


class MergedMetrics(Collector):
    """The families of `local` plus those served at each of `sources` (label value -> URL)."""

    def __init__(self, local: CollectorRegistry, sources: Sequence[tuple[str, str]]) -> None:
        self._local = local
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        families = {family.name: family for family in self._local.collect()}
        failures = Metric("chorus_metrics_merge_failures", "Merged /metrics sources that did not answer.", "gauge")
        for label, url in self._sources:
            try:
                remote = _fetch(url)
            except (httpx.HTTPError, ValueError) as e:
                logger.warning("metrics of %s at %s are not available: %s", label, url, e)
                failures.add_sample(failures.name, {SOURCE_LABEL: label}, 1)
                continue
            failures.add_sample(failures.name, {SOURCE_LABEL: label}, 0)
            _merge(families, remote, label)
        yield from families.values()
        yield failures


def _fetch(url: str) -> list[Metric]:
    response = httpx.get(url, timeout=_FETCH_TIMEOUT_S)
    response.raise_for_status()
    return list(text_string_to_metric_families(response.text))


def _merge(families: dict[str, Metric], remote: Iterable[Metric], label: str) -> None:
    for family in remote:
        samples = [
            Sample(s.name, {**s.labels, SOURCE_LABEL: label}, s.value, s.timestamp, s.exemplar) for s in family.samples
        ]
        # The parser returns a counter's `_created` samples as a gauge family of their own; the exposition writes
        # them under the counter's family, so they go back there (else `x_created` would be declared twice).
        base = family.name.removesuffix(_CREATED)
        name = base if family.name.endswith(_CREATED) and base in families else family.name
        if name in families:
            families[name].samples.extend(samples)
        else:
            family.samples = samples
            families[name] = family


def merged_registry(local: CollectorRegistry, sources: Sequence[tuple[str, str]]) -> CollectorRegistry:
    """A registry whose exposition is `local`'s families with the samples of `sources` merged in."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedMetrics(local, sources))
    return registry
