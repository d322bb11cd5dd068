"""Which server `chorus run`/`executions` talk to, the SSE parser, the progress display and the exit codes."""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.client import server_config
from orchestrator.cli.exit_codes import EXIT_EXECUTION_FAILED, EXIT_EXECUTION_KILLED, EXIT_FAILURE, EXIT_OK
from orchestrator.cli.follow import (
    Progress,
    exit_code,
    sse_events,
)
from orchestrator.cli.local_runtime import LocalRuntime, this_process_started_at, write_runtime
from orchestrator.core.errors import ConfigurationError


def _args(**given: object) -> argparse.Namespace:
    return argparse.Namespace(**{"url": None, "token": None, "data_dir": None, **given})


def test_the_url_flag_wins_and_a_root_url_gets_the_api_base() -> None:
    config = server_config(_args(url="http://h:1/"), {"CHORUS_URL": "http://other:2", "CHORUS_TOKEN": "t"})

    assert (config.api_url, config.token) == ("http://h:1/api/v1/main", "t")


def test_the_environment_then_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('url = "https://chorus.example/api/v1/main"\ntoken = "from-file"\n')

    from_env = server_config(_args(), {"CHORUS_URL": "http://env:8080", "CHORUS_CONFIG": str(config_file)})
    from_file = server_config(_args(), {"CHORUS_CONFIG": str(config_file)})

    assert from_env.api_url == "http://env:8080/api/v1/main"
    assert (from_file.api_url, from_file.token) == ("https://chorus.example/api/v1/main", "from-file")


def test_a_running_chorus_local_is_found_by_its_data_directory(tmp_path: Path) -> None:
    runtime = LocalRuntime(
        pid=os.getpid(),
        started_at=this_process_started_at(),
        data_dir=str(tmp_path),
        api_url="http://127.0.0.1:9999/api/v1/main",
        console_url="http://127.0.0.1:9999/ui",
        metrics_url="http://127.0.0.1:9999/metrics",
        database_url="postgresql+psycopg://x@127.0.0.1/x",
        broker_url="redis://127.0.0.1:1/0",
        result_backend="redis://127.0.0.1:1/1",
    )
    write_runtime(tmp_path, runtime)

    named = server_config(_args(data_dir=tmp_path), {})
    default = server_config(_args(), {"CHORUS_DATA_DIR": str(tmp_path), "CHORUS_CONFIG": str(tmp_path / "none")})

    assert named.api_url == default.api_url == "http://127.0.0.1:9999/api/v1/main"


@pytest.mark.parametrize(
    ("given", "environ", "field", "words"),
    [
        ({}, {"CHORUS_CONFIG": "/nonexistent", "CHORUS_DATA_DIR": "/nonexistent"}, "CHORUS_URL", "which server?"),
        ({"url": "ftp://h"}, {}, "CHORUS_URL", "not an http(s) URL"),
        ({"data_dir": Path("/nonexistent")}, {}, "--data-dir", "no `chorus local` is running"),
    ],
)
def test_no_usable_server_is_a_configuration_error_naming_what_to_set(
    given: dict[str, object], environ: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        server_config(_args(**given), environ)

    assert raised.value.name == field and words in raised.value.message


def test_a_config_file_without_a_url_is_refused(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('token = "t"\n')

    with pytest.raises(ConfigurationError, match="has no `url"):
        server_config(_args(), {"CHORUS_CONFIG": str(config_file)})


def test_sse_events_are_decoded_and_keep_alives_skipped() -> None:
    body = 'id: start\ndata: {"id":"e"}\n\n: keep-alive\n\nid: end\ndata: {"id":"e","n":1}\n\n'
    response = httpx.Response(200, content=body.encode())

    assert list(sse_events(response)) == [("start", {"id": "e"}), ("end", {"id": "e", "n": 1})]


def _execution(state: str, *runs: tuple[str, str]) -> dict[str, object]:
    return {
        "id": "e1",
        "state": {"current": state},
        "taskRunList": [{"id": t, "taskId": t, "value": None, "state": {"current": s}} for t, s in runs],
    }


def test_plain_progress_prints_one_line_per_change_only() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=False)

    progress.show(_execution("RUNNING", ("a", "RUNNING")))
    progress.show(_execution("RUNNING", ("a", "RUNNING")))
    progress.show(_execution("FAILED", ("a", "FAILED")))

    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["a RUNNING", "execution e1 RUNNING", "a FAILED", "execution e1 FAILED"]


def test_tty_progress_redraws_its_block_in_place() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True)

    progress.show(_execution("RUNNING", ("a", "RUNNING")))
    progress.show(_execution("SUCCESS", ("a", "SUCCESS"), ("b", "SUCCESS")))

    first, second = out.getvalue().split("\x1b[2F\x1b[J")
    assert "a" in first and "RUNNING" in first
    assert second.count("\n") == 3 and "b" in second


def test_exit_codes_by_final_state() -> None:
    assert [exit_code(s) for s in ("SUCCESS", "FAILED", "KILLED", "RUNNING")] == [
        EXIT_OK,
        EXIT_EXECUTION_FAILED,
        EXIT_EXECUTION_KILLED,
        EXIT_FAILURE,
    ]
