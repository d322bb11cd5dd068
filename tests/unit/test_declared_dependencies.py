"""Every third-party package the code imports is declared in pyproject.toml (the tests' ones at least in dev)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OWN = {"orchestrator", "workers", "api", "tests", "loadtests", "__future__"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def _imports(package: str) -> Iterator[tuple[str, Path]]:
    for path in (ROOT / package).rglob("*.py"):
        if "fixtures" in path.parts:  # vendored as-is
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN:
                    yield top, path


RUNTIME = _declared(PROJECT["dependencies"])
EVERYTHING = RUNTIME | _declared([r for extra in PROJECT["optional-dependencies"].values() for r in extra])


@pytest.mark.parametrize(
    ("package", "declared"),
    [("orchestrator", RUNTIME), ("workers", RUNTIME), ("api", RUNTIME), ("tests", EVERYTHING),
     ("loadtests", EVERYTHING)],
)  # fmt: skip
def test_every_imported_distribution_is_declared(package: str, declared: set[str]) -> None:
    distributions = packages_distributions()
    missing = {
        f"{top} ({path.relative_to(ROOT)})"
        for top, path in _imports(package)
        if not any(_normal(d) in declared for d in distributions.get(top, [top]))
    }

    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
