"""Every expression in the Kestra test flows compiles (except the one Kestra itself fails on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import check_syntax, has_expression

FLOWS = Path(__file__).resolve().parents[2] / "fixtures" / "kestra_flows"
#: Kestra's own test expects this flow to FAIL: its If condition nests `{% for %}` inside `{{ }}`.
EXPECTED_TO_FAIL = {("flowable-with-parent-fail.yaml", "{{parents[0].taskrun.value == 'CUMULATIVE' and {% for")}


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted(FLOWS.rglob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found += [(path.name, text) for text in _strings(document) if has_expression(text)]
    return found


EXPRESSIONS = _expressions()


def _expected_to_fail(name: str, text: str) -> bool:
    return any(name == flow and text.startswith(prefix) for flow, prefix in EXPECTED_TO_FAIL)


def test_the_fixture_flows_contain_expressions() -> None:
    assert len(EXPRESSIONS) > 150


@pytest.mark.parametrize(
    ("flow", "template"),
    [e for e in EXPRESSIONS if not _expected_to_fail(*e)],
    ids=[f"{n}:{t[:40]}" for n, t in EXPRESSIONS if not _expected_to_fail(n, t)],
)
def test_every_fixture_expression_compiles(flow: str, template: str) -> None:
    check_syntax(template)


def test_the_expression_kestra_rejects_is_rejected() -> None:
    failing = [t for n, t in EXPRESSIONS if _expected_to_fail(n, t)]
    assert len(failing) == 1
    with pytest.raises(ExpressionError, match="Syntax error"):
        check_syntax(failing[0])
