"""Namespace files over HTTP, in Kestra's `/namespaces/{ns}/files...` shape, with their RBAC and bad paths."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.integration.api.conftest import ADMIN, AppFactory

FILES = "/api/v1/main/namespaces/company.team/files"


@pytest.fixture
def client(make_client: AppFactory, tmp_path: Path) -> TestClient:
    """No credentials (an anonymous admin), and a data directory of this test's own."""
    return make_client(data_dir=tmp_path)


def _upload(client: TestClient, path: str, content: bytes, filename: str = "f.txt", **kw: object) -> int:
    files = {"fileContent": (filename, content, "application/octet-stream")}
    return client.post(FILES, params={"path": path}, files=files, **kw).status_code  # type: ignore[arg-type]


def test_an_uploaded_file_is_listed_found_downloaded_and_is_what_the_namespace_tasks_read(
    client: TestClient,
) -> None:
    assert _upload(client, "/scripts/hello.py", b"print('hi')\n") == 200

    root = client.get(f"{FILES}/directory").json()
    assert [(e["fileName"], e["type"]) for e in root] == [("scripts", "Directory")]
    inside = client.get(f"{FILES}/directory", params={"path": "/scripts"}).json()
    assert [(e["fileName"], e["type"], e["size"]) for e in inside] == [("hello.py", "File", 12)]
    assert isinstance(inside[0]["lastModifiedTime"], int)
    assert client.get(f"{FILES}/search", params={"q": "hello"}).json() == ["/scripts/hello.py"]
    got = client.get(FILES, params={"path": "scripts/hello.py"})
    assert got.status_code == 200 and got.content == b"print('hi')\n"
    assert got.headers["content-type"] == "application/octet-stream"
    stats = client.get(f"{FILES}/stats", params={"path": "/scripts/hello.py"}).json()
    assert (stats["fileName"], stats["size"]) == ("hello.py", 12)
    # the same file the UploadFiles/DownloadFiles tasks and read('/scripts/hello.py') use
    data_dir = client.app.state.engine.settings.data_dir  # type: ignore[attr-defined]
    assert (data_dir / "storage/company/team/_files/scripts/hello.py").read_bytes() == b"print('hi')\n"


def test_moving_and_deleting_a_file_removes_the_folders_it_leaves_empty(client: TestClient) -> None:
    _upload(client, "/a/b/one.txt", b"1")
    _upload(client, "/keep.txt", b"k")

    assert client.put(FILES, params={"from": "/a/b/one.txt", "to": "/a/b/two.txt"}).status_code == 200
    assert client.get(FILES, params={"path": "/a/b/two.txt"}).content == b"1"
    assert client.put(FILES, params={"from": "/a/b/two.txt", "to": "/keep.txt"}).status_code == 409
    assert client.delete(FILES, params={"path": "/a/b/two.txt"}).status_code == 200

    assert [e["fileName"] for e in client.get(f"{FILES}/directory").json()] == ["keep.txt"]
    assert client.get(FILES, params={"path": "/a/b/two.txt"}).status_code == 404


def test_a_zip_upload_is_unpacked_under_the_root(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("docs/readme.md", "# hi")
        archive.writestr("run.sh", "echo hi")

    assert _upload(client, "", buffer.getvalue(), filename="bundle.zip") == 200

    assert client.get(f"{FILES}/search").json() == ["/docs/readme.md", "/run.sh"]


def test_paths_outside_the_namespace_or_in_flows_are_refused_naming_the_field(client: TestClient) -> None:
    for path in ("/../../etc/passwd", "a/../../b"):
        response = client.get(FILES, params={"path": path})
        assert response.status_code == 422, path
        assert response.json()["_embedded"]["errors"][0]["path"] == "path"
    assert _upload(client, "/_flows/x.yml", b"id: x") == 422
    assert client.get(FILES, params={"path": "/nothing.txt"}).status_code == 404
    assert client.delete(FILES, params={"path": "/"}).status_code == 422
    missing_part = client.post(FILES, params={"path": "/x"}, data={"other": "1"})
    assert missing_part.status_code == 422
    assert missing_part.json()["_embedded"]["errors"][0]["path"] == "fileContent"
    bad = client.get("/api/v1/main/namespaces/bad ns/files/directory")
    assert bad.status_code == 422 and bad.json()["_embedded"]["errors"][0]["path"] == "namespace"


def test_operators_read_files_developers_change_them_and_others_see_nothing(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], data_dir=tmp_path)
    accounts = client.app.state.accounts  # type: ignore[attr-defined]
    for role in ("developer", "operator", "viewer"):
        accounts.create_user(f"{role}@x", "role-password-1", [Binding(role, "company")], actor="test")
    assert _upload(client, "/seed.txt", b"s", auth=ADMIN) == 200

    def as_(role: str) -> tuple[str, str]:
        return (f"{role}@x", "role-password-1")

    assert client.get(FILES, params={"path": "/seed.txt"}, auth=as_("operator")).status_code == 200
    assert _upload(client, "/op.txt", b"o", auth=as_("operator")) == 403
    assert client.delete(FILES, params={"path": "/seed.txt"}, auth=as_("operator")).status_code == 403
    assert _upload(client, "/dev.txt", b"d", auth=as_("developer")) == 200
    # a viewer cannot read files: they do not exist for it
    assert client.get(f"{FILES}/directory", auth=as_("viewer")).status_code == 404
    assert client.get(FILES, params={"path": "/seed.txt"}, auth=as_("viewer")).status_code == 404
    outside = "/api/v1/main/namespaces/other/files/directory"
    assert client.get(outside, auth=as_("developer")).status_code == 404
    audit = client.get("/api/v1/main/audit", params={"namespace": "company.team"}, auth=ADMIN).json()
    actions = {(e.get("action"), e.get("actor")) for e in audit.get("results", [])}
    assert ("file.upload", "user:developer@x") in actions, actions
