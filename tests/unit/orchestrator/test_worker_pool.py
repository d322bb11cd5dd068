"""`chorus worker` runs Celery's prefork pool by default, or a threads pool for I/O-bound pools when asked."""

from __future__ import annotations

import pytest

from orchestrator.cli.processes import worker_command
from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import load_settings


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_default_worker_is_prefork_with_the_configured_concurrency() -> None:
    settings = load_settings()
    argv = worker_command("control", settings.worker_concurrency, settings.worker_pool)

    assert (_option(argv, "-P"), _option(argv, "-c"), _option(argv, "-Q")) == ("prefork", "2", "control")


def test_a_threads_pool_is_chosen_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_WORKER_POOL", "threads")
    monkeypatch.setenv("CHORUS_WORKER_CONCURRENCY", "32")
    settings = load_settings()

    argv = worker_command("ai,io", settings.worker_concurrency, settings.worker_pool)

    assert (_option(argv, "-P"), _option(argv, "-c"), _option(argv, "-Q")) == ("threads", "32", "ai,io")


def test_an_unknown_pool_kind_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_WORKER_POOL", "gevent")

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    assert caught.value.name == "CHORUS_WORKER_POOL"
