"""A WorkingDirectory's `cache` keeps matching files between executions of the flow, for its `ttl`."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

CACHED = """
id: cached
namespace: {ns}
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    cache:
      ttl: {ttl}
      patterns:
        - "*.txt"
    tasks:
      - id: exists
        type: io.kestra.plugin.core.storage.LocalFiles
        outputs:
          - "*.txt"
      - id: write
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          hello.txt: HELLO
          skipped.log: not cached
"""


def _restored(stack: Stack, namespace: str) -> dict[str, Any]:
    execution = stack.wait_for_state(stack.run(namespace, "cached")["id"])
    assert execution["state"]["current"] == "SUCCESS"
    return next(r for r in execution["taskRunList"] if r["taskId"] == "exists")["outputs"]["uris"]  # type: ignore[no-any-return]


def test_the_second_run_starts_with_the_first_runs_matching_files(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CACHED.replace("{ttl}", "PT5M"))

    assert _restored(stack, unique_namespace) == {}
    assert set(_restored(stack, unique_namespace)) == {"hello.txt"}  # *.log is not in the patterns


def test_an_expired_cache_is_not_restored(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CACHED.replace("{ttl}", "PT1S"))
    _restored(stack, unique_namespace)
    time.sleep(1.5)

    assert _restored(stack, unique_namespace) == {}


def test_a_cache_entry_leaving_the_directory_fails_the_run(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CACHED.replace("{ttl}", "PT5M"))
    archive = stack.settings.data_dir.joinpath(
        "storage", *unique_namespace.split("."), "cached", "wd", "cache", "cache.zip"
    )
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../escaped.txt", "zip slip")

    execution = stack.wait_for_state(stack.run(unique_namespace, "cached")["id"])

    assert execution["state"]["current"] == "FAILED"
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    assert any("leaves the working directory" in line["message"] for line in logs)
