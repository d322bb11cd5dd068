"""namespace.UploadFiles/DownloadFiles/DeleteFiles on namespace files in internal storage, and `read()` of them."""

from __future__ import annotations

import uuid

from orchestrator.core.ids import new_id
from orchestrator.core.states import State
from orchestrator.engine import Engine
from tests.integration.workers.conftest import Runner
from workers.nsfiles import namespace_file
from workers.storage import local_path


def _flow(namespace: str, tasks: str) -> str:
    return f"id: t\nnamespace: {namespace}\ntasks:\n{tasks}"


def _upload(namespace: str, uri: str, conflict: str = "OVERWRITE") -> str:
    return _flow(
        namespace,
        "  - id: t\n    type: io.kestra.plugin.core.namespace.UploadFiles\n"
        f"    namespace: {namespace}\n    destination: /data\n    conflict: {conflict}\n"
        f"    filesMap:\n      /hello.txt: {uri}\n",
    )


def _uploaded_source(run_task: Runner, namespace: str, execution_id: str) -> str:
    """A file written by `execution_id`, which then uploads it (a task may only use files it may read)."""
    written = run_task(
        _flow(namespace, "  - id: t\n    type: io.kestra.plugin.core.storage.Write\n    content: hi"),
        "t",
        execution_id=execution_id,
    )
    assert written.outputs is not None, written.error
    return str(written.outputs["uri"])


def test_upload_puts_a_file_in_the_namespace_and_read_returns_it(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.ns{uuid.uuid4().hex[:8]}"
    execution_id = new_id()
    uploaded = run_task(
        _upload(namespace, _uploaded_source(run_task, namespace, execution_id)), "t", execution_id=execution_id
    )
    assert uploaded.state is State.SUCCESS, uploaded.error
    assert namespace_file(worker_engine.settings.data_dir, namespace, "/data/hello.txt").read_text() == "hi"

    read = run_task(
        _flow(
            namespace,
            "  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ read('/data/hello.txt') }}\"",
        ),
        "t",
    )

    assert read.outputs == {"value": "hi"}


def test_upload_with_conflict_error_fails_on_an_existing_file(run_task: Runner) -> None:
    namespace = f"tests.ns{uuid.uuid4().hex[:8]}"
    execution_id = new_id()
    source = _uploaded_source(run_task, namespace, execution_id)
    run_task(_upload(namespace, source), "t", execution_id=execution_id)

    again = run_task(_upload(namespace, source, conflict="ERROR"), "t", execution_id=execution_id)

    assert again.state is State.FAILED
    assert again.error == f"File '/data/hello.txt' already exists in namespace '{namespace}'"


def test_download_copies_matching_files_into_the_execution(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.ns{uuid.uuid4().hex[:8]}"
    execution_id = new_id()
    run_task(_upload(namespace, _uploaded_source(run_task, namespace, execution_id)), "t", execution_id=execution_id)

    downloaded = run_task(
        _flow(
            namespace,
            f"  - id: t\n    type: io.kestra.plugin.core.namespace.DownloadFiles\n    namespace: {namespace}\n"
            "    files: ['/data/**']\n",
        ),
        "t",
    )

    assert downloaded.outputs is not None, downloaded.error
    assert list(downloaded.outputs["files"]) == ["/data/hello.txt"]
    assert (
        local_path(worker_engine.settings.data_dir, downloaded.outputs["files"]["/data/hello.txt"]).read_text() == "hi"
    )


def test_delete_removes_matching_files_and_read_then_fails(run_task: Runner) -> None:
    namespace = f"tests.ns{uuid.uuid4().hex[:8]}"
    execution_id = new_id()
    run_task(_upload(namespace, _uploaded_source(run_task, namespace, execution_id)), "t", execution_id=execution_id)

    deleted = run_task(
        _flow(
            namespace,
            f"  - id: t\n    type: io.kestra.plugin.core.namespace.DeleteFiles\n    namespace: {namespace}\n"
            "    files: /data/hello.txt\n",
        ),
        "t",
    )
    read = run_task(
        _flow(
            namespace,
            "  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ read('/data/hello.txt') }}\"",
        ),
        "t",
    )

    assert deleted.state is State.SUCCESS, deleted.error
    assert read.state is State.FAILED
    assert read.error is not None and "no namespace file /data/hello.txt" in read.error
