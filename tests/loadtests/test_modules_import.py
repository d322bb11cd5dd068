"""Every load-test module imports: the probes run by hand (lean, profile, sweeper) have no other test, and a
helper renamed under them (tests/harness) would otherwise break them silently."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import loadtests

MODULES = sorted(m.name for m in pkgutil.iter_modules(loadtests.__path__, "loadtests."))


def test_the_package_lists_the_hand_run_probes() -> None:
    assert {"loadtests.lean", "loadtests.profile", "loadtests.sweeper"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name
