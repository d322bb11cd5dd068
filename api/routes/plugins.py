"""The task catalogue: Kestra's `GET /plugins` and `GET /plugins/{cls}`, which the console's editor completes from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from api.deps import authenticate, note
from orchestrator.core.errors import NotFound
from orchestrator.core.plugin_docs import plugin_doc, plugin_groups

# Any signed-in caller may read it, as in Kestra: it describes the server, not anyone's data.
router = APIRouter(tags=["Plugins"], dependencies=[Depends(authenticate)])


@router.get("/plugins")
def list_plugins(request: Request) -> list[dict[str, Any]]:
    """Every plugin group with the classes of the task and trigger types Chorus runs."""
    note(request, "plugin.read", read_only=True)
    return plugin_groups()


@router.get("/plugins/{cls}")
def plugin_documentation(request: Request, cls: str = Path(max_length=200)) -> dict[str, Any]:
    """One task or trigger type: its properties (JSON schema, by YAML name) and which are required; 404 if unknown."""
    note(request, "plugin.read", subject=cls, read_only=True)
    doc = plugin_doc(cls)
    if doc is None:
        raise NotFound("plugin", cls)
    return doc
