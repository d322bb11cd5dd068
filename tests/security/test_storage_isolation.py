"""Stored files across namespaces, on the running stack: the storage tasks (Size, Concat, Split, Reverse,
FilterItems, Delete), a Loop over a file, and the namespace-file tasks (Download/Upload/DeleteFiles) given a file
or a namespace of namespace B by a flow of namespace A fail naming the refusal, and B's files stay as they were;
the same tasks on A's own files work.

Before this, each of them took any `kestra:///` URI or namespace: A could copy B's execution outputs and
namespace files into its own execution (Concat, Split, DownloadFiles), learn their size, or delete them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.security

PRIVATE = "private-to-b"

OWNER = """
id: owner
namespace: {ns}
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: '{private}'
    extension: .txt
outputs:
  - id: uri
    type: STRING
    value: "{{{{ outputs.write.uri }}}}"
"""

PROBE = """
id: probe-{name}
namespace: {ns}
inputs:
  - id: uri
    type: STRING
  - id: target
    type: STRING
tasks:
  - id: own
    type: io.kestra.plugin.core.storage.Write
    content: "{{{{ inputs.target }}}}"
  - id: probe
{task}
"""

#: (name, task YAML over `inputs.uri` (a stored file) and `inputs.target` (its namespace), the refusal)
_FILE = "is not a file of an execution namespace"
CORPUS = [
    ("size", 'type: io.kestra.plugin.core.storage.Size\nuri: "{{ inputs.uri }}"', _FILE),
    ("concat", 'type: io.kestra.plugin.core.storage.Concat\nfiles: ["{{ inputs.uri }}"]', _FILE),
    ("split", 'type: io.kestra.plugin.core.storage.Split\nfrom: "{{ inputs.uri }}"\nrows: 1', _FILE),
    ("reverse", 'type: io.kestra.plugin.core.storage.Reverse\nfrom: "{{ inputs.uri }}"', _FILE),
    ("filter", 'type: io.kestra.plugin.core.storage.FilterItems\nfrom: "{{ inputs.uri }}"\n'
     'filterCondition: "{{ true }}"', _FILE),
    ("delete", 'type: io.kestra.plugin.core.storage.Delete\nuri: "{{ inputs.uri }}"', _FILE),
    ("loop", 'type: io.kestra.plugin.core.flow.Loop\nvalues: "{{ inputs.uri }}"\ntasks:\n'
     '  - id: each\n    type: io.kestra.plugin.core.log.Log\n    message: "{{ item.value }}"', _FILE),
    ("download", 'type: io.kestra.plugin.core.namespace.DownloadFiles\nnamespace: "{{ inputs.target }}"\n'
     'files: ["/private.txt"]', "may not use namespace"),
    ("upload", 'type: io.kestra.plugin.core.namespace.UploadFiles\nnamespace: "{{ inputs.target }}"\n'
     'filesMap:\n  /private.txt: "{{ outputs.own.uri }}"', "may not use namespace"),
    ("delete-files", 'type: io.kestra.plugin.core.namespace.DeleteFiles\nnamespace: "{{ inputs.target }}"\n'
     'files: ["/private.txt"]', "may not use namespace"),
]  # fmt: skip


def _indent(task: str) -> str:
    return "\n".join("    " + line for line in task.splitlines())


def _content(namespace: str) -> str:
    """What B's files hold: one JSON string, so the item tasks (FilterItems, Loop) can read it as an item."""
    return f'"{PRIVATE} {namespace}"'


@pytest.fixture
def namespaces(stack: Stack, unique_namespace: str) -> tuple[str, str]:
    """Namespaces A (the prober) and B (the owner of a file from an execution and of a namespace file)."""
    own, other = f"{unique_namespace}.a", f"{unique_namespace}.b"
    for namespace in (own, other):
        stack.deploy(OWNER.format(ns=namespace, private=_content(namespace)))
        uploaded = stack.api.post(
            f"/namespaces/{namespace}/files",
            params={"path": "/private.txt"},
            files={"fileContent": ("private.txt", _content(namespace).encode())},
        )
        assert uploaded.status_code in (200, 204), uploaded.text
    return own, other


def _stored_file(stack: Stack, namespace: str) -> tuple[str, str]:
    """A file an execution of `namespace` wrote: (execution id, URI)."""
    ended = stack.wait_for_state(stack.run(namespace, "owner")["id"])
    assert ended["state"]["current"] == "SUCCESS"
    return ended["id"], str(ended["outputs"]["uri"])


def _logs(stack: Stack, execution_id: str) -> str:
    return "\n".join(line["message"] for line in stack.api.get(f"/logs/{execution_id}").json())


def _probe(stack: Stack, own: str, target: str, name: str, task: str) -> tuple[dict[str, Any], str, str]:
    owner_id, uri = _stored_file(stack, target)
    stack.deploy(PROBE.format(name=name, ns=own, task=_indent(task)))
    ended = stack.wait_for_state(stack.run(own, f"probe-{name}", uri=uri, target=target)["id"])
    return ended, owner_id, uri


def _b_files_intact(stack: Stack, other: str, owner_id: str, uri: str) -> None:
    download = stack.api.get(f"/executions/{owner_id}/file", params={"path": uri})
    assert download.status_code == 200 and download.text == _content(other)
    namespace_file = stack.api.get(f"/namespaces/{other}/files", params={"path": "/private.txt"})
    assert namespace_file.status_code == 200 and namespace_file.text == _content(other)


@pytest.mark.parametrize(("name", "task", "error"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_storage_task_given_another_namespaces_file_fails_and_learns_nothing(
    stack: Stack, namespaces: tuple[str, str], name: str, task: str, error: str
) -> None:
    own, other = namespaces
    ended, owner_id, uri = _probe(stack, own, other, name, task)

    assert ended["state"]["current"] == "FAILED"
    assert error in _logs(stack, ended["id"])
    probe = next(run for run in ended["taskRunList"] if run["taskId"] == "probe")
    assert probe.get("outputs") in (None, {}), probe  # no size, no copy, nothing deleted
    assert f"{PRIVATE} {other}" not in str(ended)
    _b_files_intact(stack, other, owner_id, uri)


@pytest.mark.parametrize(("name", "task", "error"), CORPUS, ids=[c[0] for c in CORPUS])
def test_the_same_storage_task_on_its_own_namespaces_files_works(
    stack: Stack, namespaces: tuple[str, str], name: str, task: str, error: str
) -> None:
    own, _ = namespaces
    ended, _, _ = _probe(stack, own, own, name, task)

    assert ended["state"]["current"] == "SUCCESS", _logs(stack, ended["id"])
    if name == "size":
        probe = next(run for run in ended["taskRunList"] if run["taskId"] == "probe")
        assert probe["outputs"]["size"] == len(_content(own))


def test_a_namespace_file_uri_of_its_own_namespace_is_readable_by_storage_tasks(
    stack: Stack, namespaces: tuple[str, str]
) -> None:
    own, other = namespaces
    task = 'type: io.kestra.plugin.core.storage.Size\nuri: "kestra:///{path}/_files/private.txt"'
    mine, _, _ = _probe(stack, own, own, "ns-uri-own", task.format(path=own.replace(".", "/")))
    theirs, _, _ = _probe(stack, own, other, "ns-uri-other", task.format(path=other.replace(".", "/")))

    assert mine["state"]["current"] == "SUCCESS", _logs(stack, mine["id"])
    assert theirs["state"]["current"] == "FAILED"
    assert _FILE in _logs(stack, theirs["id"])
