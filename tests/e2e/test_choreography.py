"""The choreography example on the real stack (API, broker, workers): a triage run publishes
`ticket.classified` through a Celery worker, and only the subscriber of its kind runs, once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Stack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "choreography"


def _executions(stack: Stack, namespace: str, flow_id: str) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"namespace": namespace, "flowId": flow_id, "size": 50}
    return stack.api.get("/executions/search", params=params).json()["results"]  # type: ignore[no-any-return]


def test_a_triage_run_starts_the_billing_flow_once_and_the_support_flow_never(
    stack: Stack, unique_namespace: str
) -> None:
    for name in ("triage", "billing", "support"):
        source = (EXAMPLES / f"{name}.yaml").read_text()
        stack.deploy(source.replace("namespace: company.helpdesk", f"namespace: {unique_namespace}"))

    triage = stack.run(unique_namespace, "triage", ticket="T-42", text="please refund my invoice")
    ended = stack.wait_for_state(triage["id"], {"SUCCESS"})
    announce = next(t for t in ended["taskRunList"] if t["taskId"] == "announce")
    assert announce["outputs"]["event"] == "ticket.classified" and announce["outputs"]["eventId"]

    deadline = time.monotonic() + 30
    while not (billing := _executions(stack, unique_namespace, "billing")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(billing) == 1
    done = stack.wait_for_state(billing[0]["id"], {"SUCCESS"})
    assert done["inputs"] == {"ticket": "T-42"}
    assert done["trigger"]["variables"]["publisher"]["executionId"] == triage["id"]
    time.sleep(1)  # a second delivery (the sweeper's), if it started anything, would show by now
    assert len(_executions(stack, unique_namespace, "billing")) == 1
    assert _executions(stack, unique_namespace, "support") == []
