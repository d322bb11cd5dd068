"""The audit trail of API actions: who, what, from where, the outcome, denials; redaction; `chorus audit verify`."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from orchestrator import store
from orchestrator.cli import main
from orchestrator.core.audit import GENESIS_HASH, chain_hash
from orchestrator.engine.accounts import Binding
from orchestrator.engine.audit_trail import REDACTED, ApiAction, record, redact
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from tests.harness.services import psycopg_url
from tests.integration.api.conftest import ADMIN, AppFactory, flow_source

YAML = {"Content-Type": "application/x-yaml"}


def events(client: TestClient, **params: str) -> list[dict[str, object]]:
    return client.get("/api/v1/main/audit", params={"size": "1000", **params}, auth=ADMIN).json()["results"]  # type: ignore[no-any-return]


def test_a_kv_write_is_audited_with_actor_client_object_and_outcome(auth_client: TestClient) -> None:
    auth_client.put("/api/v1/main/namespaces/team/kv/k", content="1", auth=ADMIN)

    (event,) = events(auth_client, action="kv.put")

    assert event["actor"] == f"user:{ADMIN[0]}"
    assert event["subject"] == "team/kv/k"
    assert event["namespace"] == "team"
    assert event["payload"]["outcome"] == "success"  # type: ignore[index]
    assert event["payload"]["client"] == "testclient"  # type: ignore[index]


def test_a_flow_change_is_on_the_flows_chain_with_the_caller_and_its_address(auth_client: TestClient) -> None:
    auth_client.post("/api/v1/main/flows", content=flow_source("team"), headers=YAML, auth=ADMIN)

    chain = auth_client.get("/api/v1/main/flows/team/hello/audit", auth=ADMIN).json()

    assert chain["verified"] is True
    assert [(e["action"], e["actor"]) for e in chain["events"]] == [("flow.created", f"user:{ADMIN[0]}@testclient")]


def test_denied_attempts_are_audited_reads_included(auth_client: TestClient) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    accounts.create_user("eve", "eve-password", [Binding("viewer", "team")], actor="test")
    auth_client.post("/api/v1/main/flows", content=flow_source("secret.ns"), headers=YAML, auth=ADMIN)

    auth_client.get("/api/v1/main/flows/search")  # 401
    auth_client.put("/api/v1/main/namespaces/team/kv/k", content="1", auth=("eve", "eve-password"))  # 404: kv unseen
    auth_client.get("/api/v1/main/flows/secret.ns/hello", auth=("eve", "eve-password"))  # 404: hidden flow

    denied = [e for e in events(auth_client) if e["payload"].get("outcome") == "denied"]  # type: ignore[attr-defined]
    assert {(e["actor"], e["payload"]["status"]) for e in denied} == {  # type: ignore[index]
        ("anonymous", 401),
        ("user:eve", 404),
    }
    assert len(denied) == 3


def test_a_failed_change_is_audited_as_failed(auth_client: TestClient) -> None:
    auth_client.put("/api/v1/main/namespaces/team/kv/k", content="{bad", auth=ADMIN)

    (event,) = events(auth_client, action="kv.put")

    assert (event["payload"]["outcome"], event["payload"]["status"]) == ("failed", 422)  # type: ignore[index]


def test_secrets_are_redacted_in_audit_payloads() -> None:
    assert redact({"password": "p", "nested": [{"apiKey": "k", "ok": 1}], "Authorization": "Basic x"}) == {
        "password": REDACTED,
        "nested": [{"apiKey": REDACTED, "ok": 1}],
        "Authorization": REDACTED,
    }


def test_the_audit_search_filters_by_actor_action_and_time(auth_client: TestClient) -> None:
    auth_client.put("/api/v1/main/namespaces/team/kv/k", content="1", auth=ADMIN)
    auth_client.delete("/api/v1/main/namespaces/team/kv/k", auth=ADMIN)

    assert {e["action"] for e in events(auth_client, action="kv.*")} == {"kv.put", "kv.delete"}
    assert events(auth_client, actor="nobody") == []
    assert events(auth_client, **{"from": "2999-01-01T00:00:00Z"}) == []
    bad = auth_client.get("/api/v1/main/audit", params={"from": "yesterday"}, auth=ADMIN)
    assert bad.status_code == 422 and bad.json()["_embedded"]["errors"][0]["path"] == "from"


def test_the_old_execution_audit_path_is_an_alias(client: TestClient) -> None:
    client.post("/api/v1/main/flows", content=flow_source("team"), headers=YAML)
    execution = client.post("/api/v1/main/executions/team/hello").json()

    new = client.get(f"/api/v1/main/executions/{execution['id']}/audit").json()
    old = client.get(f"/api/v1/main/audit/executions/{execution['id']}").json()

    assert new == old and new["verified"] is True and new["events"][0]["action"] == "execution.created"


def test_audit_verify_passes_then_names_the_tampered_row(
    client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client.post("/api/v1/main/flows", content=flow_source("team"), headers=YAML)
    execution = client.post("/api/v1/main/executions/team/hello").json()
    client.put("/api/v1/main/namespaces/team/kv/k", content="1")
    monkeypatch.setenv("CHORUS_DATABASE_URL", database_url)

    assert main(["audit", "verify"]) == 0
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        # A superuser can switch the append-only trigger off: exactly the tampering verify must catch.
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
        row = conn.execute(
            "UPDATE audit_events SET actor = 'mallory' WHERE chain_key = %s AND seq = 1 RETURNING id",
            (execution["id"],),
        ).fetchone()
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update")
    capsys.readouterr()

    assert main(["audit", "verify", "--execution", execution["id"]]) == 1
    out = capsys.readouterr().out
    assert f'"eventId": {row[0]}' in out and '"seq": 1' in out  # type: ignore[index]


def test_the_application_role_cannot_update_or_delete_audit_rows(client: TestClient, database_url: str) -> None:
    client.put("/api/v1/main/namespaces/team/kv/k", content="1")
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement + " WHERE id = (SELECT min(id) FROM audit_events)")


def test_with_an_audit_key_the_api_checks_macs_and_a_superuser_rewrite_shows(
    make_client: AppFactory, database_url: str
) -> None:
    client = make_client(audit_key="k" * 40)
    client.post("/api/v1/main/flows", content=flow_source("team"), headers=YAML)
    chain = client.get("/api/v1/main/flows/team/hello/audit").json()
    assert chain["verified"] is True and chain["keyed"] is True
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        # The attacker: triggers off, an actor rewritten, its hash and the head recomputed.
        conn.execute("SET session_replication_role = replica")
        row = conn.execute("SELECT id, chain_key, seq, at, action, subject, payload FROM audit_events "
                           "WHERE chain_key LIKE 'flow:%%' ORDER BY id LIMIT 1").fetchone()  # fmt: skip
        assert row is not None
        digest = chain_hash(GENESIS_HASH, store.hashed_event(row[1], row[2], row[3], "user:mallory", *row[4:]))
        conn.execute("UPDATE audit_events SET actor = 'user:mallory', hash = %s WHERE id = %s", (digest, row[0]))
        conn.execute("UPDATE audit_heads SET hash = %s WHERE chain_key = %s", (digest, row[1]))

    chain = client.get("/api/v1/main/flows/team/hello/audit").json()

    assert chain["verified"] is False and "MAC does not match" in chain["brokenAt"]["reason"]


def test_kv_writes_go_to_their_namespace_chain_and_the_older_ones_on_the_tenant_chain_still_verify(
    client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:  # a KV write as releases before migration 0012 recorded it: on the tenant's chain
        with transaction(make_sessionmaker(engine)) as session:
            old = ApiAction("user:old", "10.0.0.1", "kv.put", "success", 200, namespace="team", subject="team/kv/old")
            record(session, "main", old)
    finally:
        engine.dispose()
    client.put("/api/v1/main/namespaces/team/kv/k", content="1")
    client.put("/api/v1/main/namespaces/other/kv/k", content="2")
    client.delete("/api/v1/main/namespaces/team/kv/k")

    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        written = conn.execute(
            "SELECT chain_key, seq, action, subject FROM audit_events WHERE action LIKE 'kv.%%' ORDER BY id"
        ).fetchall()
    assert written == [
        ("api:main", 1, "kv.put", "team/kv/old"),
        ("namespace:main/team", 1, "kv.put", "team/kv/k"),
        ("namespace:main/other", 1, "kv.put", "other/kv/k"),
        ("namespace:main/team", 2, "kv.delete", "team/kv/k"),
    ]
    monkeypatch.setenv("CHORUS_DATABASE_URL", database_url)
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "verify", "--chain", "namespace:main/team"]) == 0
    assert main(["audit", "verify", "--chain", "api:main"]) == 0
    verified = [line.split(" verified")[0] for line in capsys.readouterr().out.splitlines()]
    assert verified == ["ok: 3 chain(s), 4 event(s)", "ok: 1 chain(s), 2 event(s)", "ok: 1 chain(s), 1 event(s)"]
    listed = {(e["subject"], e["namespace"]) for e in events(client, action="kv.*")}
    assert listed == {("team/kv/old", "team"), ("team/kv/k", "team"), ("other/kv/k", "other")}
    assert [e["action"] for e in events(client, action="kv.*", namespace="other")] == ["kv.put"]
