"""Medians, spreads and ratios of a run's samples, as the JSON document and the Markdown table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from loadtests.measure import median
from loadtests.scenarios import Metric, Scenario


def summarise(samples: list[dict[str, float]], key: str) -> dict[str, float]:
    values = [s[key] for s in samples if key in s]
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def scenario_summary(scenario: Scenario, chorus: list[dict[str, float]], raw: list[dict[str, float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for metric in scenario.metrics:
        c, r = summarise(chorus, metric.key), summarise(raw, metric.key)
        ratio = c["median"] / r["median"] if r["median"] else math.nan
        summary[metric.key] = {"chorus": c, "raw": r, "ratio": ratio, "target": metric.target}
    return summary


_COUNTS = ("throughput", "linear", "fanout", "backlog", "api", "webhook", "ai_calls", "scaling")


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, float], unit: str) -> str:
    if not stats["n"]:
        return "-"
    text = f"{_fmt(stats['median'])}{' ' + unit if unit and unit != '/s' else unit}"
    if stats["n"] > 1 and stats["median"]:
        spread = (stats["max"] - stats["min"]) / abs(stats["median"]) * 100
        text += f" (±{spread / 2:.0f}%)"
    return text


def _verdict(metric: Metric, ratio: float) -> str:
    if not metric.target or math.isnan(ratio):
        return metric.target
    bound = float(metric.target.split()[-1])
    met = ratio >= bound if metric.target.startswith("≥") else ratio <= bound
    return f"{metric.target} {'✅' if met else '❌'}"


def markdown(document: dict[str, Any], scenarios: list[Scenario]) -> str:
    lines = [
        "| scenario | metric | Chorus | raw Celery | Chorus/raw | target |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        entry = document["scenarios"].get(scenario.name)
        if entry is None:
            continue
        for i, metric in enumerate(scenario.metrics):
            stats = entry["summary"][metric.key]
            first = scenario.title if i == 0 else ""
            lines.append(
                f"| {first} | {metric.label} | {_cell(stats['chorus'], metric.unit)} | "
                f"{_cell(stats['raw'], metric.unit)} | {_fmt(stats['ratio'])} | {_verdict(metric, stats['ratio'])} |"
            )
        for error in entry.get("errors", []):
            lines.append(f"| {scenario.name} | **invariant broken** | {error} | | | |")
    lines.append("")
    sizes = document["sizes"]
    counts = ", ".join(f"{k} {sizes[k]}" for k in _COUNTS if k in sizes)
    lines.append(
        f"{document['mode'].capitalize()} run, medians over up to {document['reps']} repetition(s) "
        f"(± half the min-max spread, as % of the median; backlog and ai-prefork run once, fan-out and scaling "
        f"twice); sizes: {counts}; {document['machine']['cpus']} CPU(s); started {document['started_at']}."
    )
    return "\n".join(lines) + "\n"


def write(document: dict[str, Any], table: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(table, encoding="utf-8")
    return json_path, md_path
