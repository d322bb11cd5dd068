"""Flow import of a zip: the body cap (10 MiB) bounds the upload, not what it inflates to. A zip bomb (a few
hundred KB holding 150 MB of one byte) is refused with a 4xx naming `fileUpload` before the server reads it all
into memory; an ordinary zip of flows still imports."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.security

API = "/api/v1/main"

FLOW = """id: imported
namespace: security.imports
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_naming_the_upload(client: TestClient) -> None:
    bomb = _zip({"flow.yml": FLOW.encode(), "bomb.yml": b"#" * (150 * 1024 * 1024)})
    assert len(bomb) < 1024 * 1024  # far below the body cap

    started = time.monotonic()
    response = client.post(f"{API}/flows/import", files={"fileUpload": ("flows.zip", bomb, "application/zip")})

    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["_embedded"]["errors"]] == ["fileUpload"]
    assert "unpacks to more than" in response.json()["message"]
    assert time.monotonic() - started < 10
    assert client.get(f"{API}/flows/security.imports/imported").status_code == 404  # nothing half-imported


def test_an_ordinary_zip_of_flows_imports(client: TestClient) -> None:
    upload = _zip({"flows/imported.yml": FLOW.encode()})

    response = client.post(f"{API}/flows/import", files={"fileUpload": ("flows.zip", upload, "application/zip")})

    assert response.status_code == 200 and response.json() == [], response.text
    assert client.get(f"{API}/flows/security.imports/imported").status_code == 200
