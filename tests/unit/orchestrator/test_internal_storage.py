"""Internal storage paths: Kestra's `StorageContext` layout, flow and task ids as `Slugify.of` slugs."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from orchestrator import internal_storage as storage


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("each_split", "each-split"),
        ("My Flow_id  x", "my-flow-id-x"),
        (" Éléphant  _ Café ", "elephant-cafe"),
        ("already-a-slug", "already-a-slug"),
        ("__edge__", "edge"),
    ],
)
def test_slug_is_kestras_slugify(text: str, slug: str) -> None:
    assert storage.slug(text) == slug


def test_a_task_runs_files_live_under_slugged_flow_and_task_ids() -> None:
    prefix = storage.task_run_prefix("io.kestra.tests", "for_each_Item", "ex1", "each_split", "tr1")

    assert prefix == PurePosixPath("/io/kestra/tests/for-each-item/executions/ex1/tasks/each-split/tr1")
    assert storage.belongs_to(
        f"kestra://{prefix}/0.txt", storage.execution_prefix("io.kestra.tests", "for_each_Item", "ex1")
    )
    # The raw id names another directory: a URI built from it is not this execution's.
    assert not storage.belongs_to(
        "kestra:///io/kestra/tests/for_each_Item/executions/ex1/tasks/each_split/tr1/0.txt",
        storage.execution_prefix("io.kestra.tests", "for_each_Item", "ex1"),
    )


def test_an_input_file_keeps_its_input_id_and_name_but_slugs_the_flow() -> None:
    path = storage.input_file_uri_path("a.b", "My_Flow", "ex", "my_file", "data.csv")

    assert path == PurePosixPath("/a/b/my-flow/executions/ex/inputs/my_file/data.csv")
    with pytest.raises(storage.StorageError, match="relative path"):
        storage.input_file_uri_path("a.b", "My_Flow", "ex", "my_file", "../escape.csv")
