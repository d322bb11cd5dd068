"""Kestra's Pebble functions that read the rendering context: `env` (Kestra 2's EnvFunction)."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import render

ENVS = {"envs": {"PATH": "/bin", "A": "a", "EMPTY": ""}}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ env('PATH') }}", "/bin"),
        ("{{ env(name='A') }}", "a"),  # Kestra's argument name
        ("{{ env('MISSING', 'fallback') }}", "fallback"),
        ("{{ env('EMPTY', default='fallback') }}", "fallback"),  # an empty value counts as missing
        ("{{ env('MISSING') is null }}", "true"),
    ],
)
def test_env_reads_the_envs_variable_with_a_default(template: str, expected: str) -> None:
    assert render(template, ENVS) == expected


def test_env_without_envs_gives_the_default() -> None:
    assert render("{{ env('PATH', 'none') }}", {}) == "none"


def test_env_without_a_name_fails_naming_the_argument() -> None:
    with pytest.raises(ExpressionError, match="expects an argument 'name'"):
        render("{{ env() }}", ENVS)
