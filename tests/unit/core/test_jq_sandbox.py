"""The jq filter runs in a capped helper process: no environment, no files, no modules, a deadline and a memory cap."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from orchestrator.core import jq_sandbox
from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded
from orchestrator.core.expressions import RenderLimits, render, render_typed
from orchestrator.core.jq_child import ALLOWED_BUILTINS, prelude

SECRET = "jq-must-never-print-this-8c1f"
DEFAULT = RenderLimits()


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHORUS_TEST_JQ_SECRET", SECRET)
    yield


def _jq(program: str, data: str = "{}", limits: RenderLimits = DEFAULT) -> str:
    return render("{{ data | jq(program) }}", {"data": data, "program": program}, limits=limits)


@pytest.mark.parametrize(
    "program",
    [
        "env",
        "env.CHORUS_TEST_JQ_SECRET",
        "$ENV",
        "$ENV.CHORUS_TEST_JQ_SECRET",
        "[$ENV[]]",
        "def f: $ENV; f",
        "1) | $ENV | (1",
        '"\\($ENV)"',
        "$ENV as $e | $e",
        '[env[]] | join(",")',
    ],
)
def test_no_jq_program_sees_the_process_environment(program: str) -> None:
    try:
        text = _jq(program)
    except ExpressionError as e:
        text = str(e)
    assert SECRET not in text
    assert "CHORUS_TEST_JQ_SECRET" not in text.replace(program, "")


@pytest.mark.parametrize(
    "program",
    [
        "input",
        "[inputs]",
        "input_filename",
        "input_line_number",
        "get_search_list",
        "get_jq_origin",
        "get_prog_origin",
        '"x" | modulemeta',
        "debug",
        'debug("m")',
        "stderr",
        "halt",
        "halt_error",
        "halt_error(1)",
    ],
)
def test_builtins_off_the_allow_list_fail_by_name(program: str) -> None:
    name = re.findall(r"[a-z_]{3,}", program)[-1]
    with pytest.raises(ExpressionError, match=f"`{name}` is not available in Chorus expressions"):
        _jq(program)


@pytest.mark.parametrize(
    ("program", "directive"),
    [
        ('import "passwd" as $p {search: "/etc"}; $p', "import"),
        ('include "x" {search: "/"}; .', "include"),
        ("module {a: 1}; .", "module"),
    ],
)
def test_module_directives_which_read_files_are_refused(program: str, directive: str) -> None:
    with pytest.raises(ExpressionError, match=f"`{directive}` is not available in Chorus expressions"):
        _jq(program)


def test_the_allow_list_denies_any_builtin_it_does_not_name() -> None:
    text = prelude(["env/0", "map/1", "some_future_builtin/2"])
    assert 'def env: error("jq: `env` is not available' in text
    assert "def some_future_builtin(_p0; _p1): error(" in text
    assert "def map" not in text
    assert "env/0" not in ALLOWED_BUILTINS
    assert text.endswith("{} as $ENV | (\n")


def test_ordinary_programs_keep_working() -> None:
    data = '{"items": [{"n": 1, "t": "a"}, {"n": 2, "t": "b"}]}'
    assert render_typed("{{ d | jq('[.items[] | select(.n > 1) | .t]') }}", {"d": data}) == [["b"]]
    assert render_typed("{{ d | jq('.items | map(.n) | add') | first }}", {"d": data}) == 3
    assert render_typed("{{ d | jq('.items[0].t | test(\"^a$\")') }}", {"d": data}) == [True]


def test_an_error_names_the_line_of_the_program_not_of_the_prelude() -> None:
    with pytest.raises(ExpressionError, match="line 1"):
        _jq(". | | .")


def test_a_long_running_program_stops_at_the_render_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitExceeded):
        _jq("last(range(1e12))", limits=RenderLimits(max_seconds=0.5))
    assert time.monotonic() - started < 2.0
    assert _jq(".a", '{"a": 1}') == "[1]"  # the next call gets a fresh helper


def test_a_catastrophic_jq_regex_stops_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError):  # Oniguruma's retry limit, or else the deadline
        _jq('test("^(a|a)*$")', '"' + "a" * 40 + '!"', limits=RenderLimits(max_seconds=0.5))
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("program", ["[range(1e9)] | length", '"x" * 1e9 | length', "[limit(1e8; repeat(.))]"])
def test_an_allocation_bomb_stops_at_the_memory_cap_or_deadline(program: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitExceeded):
        _jq(program, limits=RenderLimits(max_seconds=3.0))
    assert time.monotonic() - started < 5.0


def test_a_result_over_the_output_limit_is_refused() -> None:
    with pytest.raises(ExpressionLimitExceeded, match="over 1000 characters"):
        _jq('"x" * 5000', limits=RenderLimits(max_output_chars=1000))


def test_the_helper_runs_with_an_empty_environment_and_is_reused() -> None:
    assert _jq("1") == "[1]"
    pool = jq_sandbox._pool()
    assert pool._idle, "a helper is kept for the next call"
    helper = pool._idle[-1]
    with open(f"/proc/{helper.process.pid}/environ", "rb") as environ:
        assert SECRET.encode() not in environ.read()
    assert _jq("2") == "[2]"
    assert pool._idle[-1] is helper
    with open(f"/proc/{helper.process.pid}/status") as status:
        uid = next(line for line in status if line.startswith("Uid:")).split()[1]
    assert os.getuid() != 0 or uid != "0", "a root parent's helper runs as nobody"
    assert os.getpid() in jq_sandbox._POOLS
