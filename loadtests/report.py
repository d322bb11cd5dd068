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


def scenario_summary(scenario: Scenario, samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Per metric: the stats of Chorus and of each baseline measured, Chorus/baseline for each (`ratios`),
    and `ratio`, the one against the scenario's primary baseline (its target is on that one).

    The first shape (`chorus`, `raw`, `ratio`, `target`) is kept: `ratio` is Chorus/raw wherever raw is the
    primary baseline, which it is for every scenario that existed then."""
    summary: dict[str, Any] = {}
    chorus = samples["chorus"]
    baselines = [side for side in samples if side != "chorus" and (samples[side] or side != "raw")]
    for metric in scenario.metrics:
        c = summarise(chorus, metric.key)
        stats = {side: summarise(samples[side], metric.key) for side in baselines}
        ratios = {side: _ratio(c, s) for side, s in stats.items()}
        summary[metric.key] = {
            "chorus": c,
            "raw": summarise(samples.get("raw", []), metric.key),
            **{side: s for side, s in stats.items() if side != "raw"},
            "ratio": ratios.get(scenario.primary, math.nan),
            "target": metric.target,
            "baseline": scenario.primary,
            "ratios": ratios,
            **({"floor": metric.floor, "floor_met": c["median"] >= metric.floor} if metric.floor is not None else {}),
        }
    return summary


def _ratio(chorus: dict[str, float], baseline: dict[str, float]) -> float:
    return chorus["median"] / baseline["median"] if baseline["median"] else math.nan


_COUNTS = (
    "throughput", "linear", "fanout", "backlog", "api", "webhook", "ai_calls", "scaling", "control1", "control2",
    "crosspool",
)  # fmt: skip
#: The table's baseline columns, in this order; a scenario's primary baseline's ratio is in bold.
_COLUMNS = (("raw", "raw Celery"), ("lean", "lean"), ("durable", "durable"))


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


def _verdict(metric: Metric, stats: dict[str, Any], primary: str) -> str:
    ratio = stats["ratio"]
    verdicts = []
    if metric.target:
        if math.isnan(ratio):
            verdicts.append(f"{metric.target} vs {primary}")
        else:
            bound = float(metric.target.split()[-1])
            met = ratio >= bound if metric.target.startswith("≥") else ratio <= bound
            verdicts.append(f"{metric.target}{'' if primary == 'raw' else ' vs ' + primary} {'✅' if met else '❌'}")
    if metric.floor is not None:
        value = stats["chorus"]["median"]
        mark = "" if math.isnan(value) else (" ✅" if value >= metric.floor else " ❌")
        verdicts.append(f"Chorus ≥ {_fmt(metric.floor)}{metric.unit}{mark}")
    return "; ".join(verdicts)


def _ratio_cell(stats: dict[str, Any], side: str, primary: str) -> str:
    ratios = stats.get("ratios")
    if ratios is None:  # a document of the first shape: its one ratio is Chorus/raw
        ratios = {"raw": stats["ratio"]}
    ratio = ratios.get(side, math.nan)
    text = _fmt(ratio)
    return f"**{text}**" if side == primary and text != "-" else text


def markdown(document: dict[str, Any], scenarios: list[Scenario]) -> str:
    header = "".join(f" {label} | Chorus/{side} |" for side, label in _COLUMNS)
    lines = [
        f"| scenario | metric | Chorus |{header} target |",
        "|---|---|---|" + "---|---|" * len(_COLUMNS) + "---|",
    ]
    for scenario in scenarios:
        entry = document["scenarios"].get(scenario.name)
        if entry is None:
            continue
        for i, metric in enumerate(scenario.metrics):
            stats = entry["summary"][metric.key]
            first = scenario.title if i == 0 else ""
            baselines = "".join(
                f" {_cell(stats[side], metric.unit) if side in stats else '-'} | "
                f"{_ratio_cell(stats, side, scenario.primary)} |"
                for side, _ in _COLUMNS
            )
            lines.append(
                f"| {first} | {metric.label} | {_cell(stats['chorus'], metric.unit)} |{baselines} "
                f"{_verdict(metric, stats, scenario.primary)} |"
            )
        for error in entry.get("errors", []):
            lines.append(f"| {scenario.name} | **invariant broken** | {error} |" + " |" * (2 * len(_COLUMNS) + 1))
    lines.append("")
    sizes = document["sizes"]
    counts = ", ".join(f"{k} {sizes[k]}" for k in _COUNTS if k in sizes)
    lines.append(
        f"{document['mode'].capitalize()} run, medians over up to {document['reps']} repetition(s) "
        f"(± half the min-max spread, as % of the median; backlog and ai-prefork run once, fan-out and scaling "
        f"twice); the ratio in bold is the one the target is on; baselines: raw = Celery as Chorus configures it, "
        f"lean = no result backend and no events, durable = lean plus a row written at submit; "
        f"sizes: {counts}; {document['machine']['cpus']} CPU(s); started {document['started_at']}."
    )
    return "\n".join(lines) + "\n"


def write(document: dict[str, Any], table: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(table, encoding="utf-8")
    return json_path, md_path
