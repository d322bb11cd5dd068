"""deploy/helm/chorus renders offline (Helm SDK from PyPI) and every manifest validates against its schema.

Core manifests go through `kubernetes-validate --strict`; ScaledObjects through `check-jsonschema` against
the vendored KEDA schema (tests/fixtures/keda). ServiceMonitor (Prometheus operator CRD) has no schema here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helm_python.chart import Chart

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "chorus"
KEDA_SCHEMA = ROOT / "tests" / "fixtures" / "keda" / "scaledobject.schema.json"
KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ScaledObject", "ServiceMonitor"}
#: The two values with no safe default (the chart refuses to render without them).
REQUIRED = {"database": {"url": "postgresql+psycopg://chorus:pw@db:5432/chorus"}, "auth": {"adminPassword": "a" * 12}}
MULTI_POOL = yaml.safe_load((CHART / "ci" / "multi-pool-values.yaml").read_text())

Manifest = dict[str, Any]


@cache
def _render(values_key: str) -> tuple[Manifest, ...]:
    values = {"default": REQUIRED, "multi-pool": MULTI_POOL, "keda": {**REQUIRED, "autoscaling": {"mode": "keda"}}}
    rendered = Chart.load(str(CHART)).render(values=values[values_key], name="chorus", namespace="chorus")
    return tuple(doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc)


def render(values_key: str) -> list[Manifest]:
    return list(_render(values_key))


def of_kind(manifests: list[Manifest], kind: str) -> Iterator[Manifest]:
    return (m for m in manifests if m["kind"] == kind)


def by_name(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in of_kind(manifests, kind)}


def write(manifests: list[Manifest], path: Path) -> Path:
    path.write_text("\n---\n".join(yaml.safe_dump(m) for m in manifests))
    return path


VALUES = ["default", "multi-pool", "keda"]


@pytest.mark.parametrize("values", VALUES)
def test_every_core_manifest_validates_strictly_against_the_kubernetes_schemas(values: str, tmp_path: Path) -> None:
    core = [m for m in render(values) if m["kind"] not in CRD_KINDS]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "-k", KUBERNETES_VERSION, "--strict", "--quiet",
         str(write(core, tmp_path / "core.yaml"))],
        capture_output=True, text=True,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", ["multi-pool", "keda"])
def test_every_scaled_object_validates_against_the_keda_crd_schema(values: str, tmp_path: Path) -> None:
    files = [write([m], tmp_path / f"{m['metadata']['name']}.yaml") for m in of_kind(render(values), "ScaledObject")]
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(KEDA_SCHEMA), *map(str, files)],
        capture_output=True,
        text=True,
    )

    assert files
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_keda_schema_refuses_an_unknown_field(tmp_path: Path) -> None:
    scaled = next(of_kind(render("keda"), "ScaledObject"))
    wrong = {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}  # KEDA calls it minReplicaCount
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(KEDA_SCHEMA),
         str(write([wrong], tmp_path / "wrong.yaml"))],
        capture_output=True, text=True,
    )  # fmt: skip

    assert done.returncode == 1
    assert "minReplicas" in done.stdout


@pytest.mark.parametrize("values", [REQUIRED, MULTI_POOL], ids=["default", "multi-pool"])
def test_helm_lint_passes_strictly(values: dict[str, Any]) -> None:
    result = helm_python.lint(str(CHART), values, strict=True, kube_version=KUBERNETES_VERSION)

    assert result["errors"] == []
    assert all(message["severity"] <= 1 for message in result["messages"]), result["messages"]


def test_without_the_required_values_the_chart_refuses_to_render_naming_them() -> None:
    with pytest.raises(helm_python.HelmError) as error:
        Chart.load(str(CHART)).render(values={}, name="chorus", namespace="chorus")

    assert "database.url is required" in str(error.value)


def test_each_pool_gets_a_worker_deployment_a_metrics_service_a_pdb_and_a_scaled_object() -> None:
    manifests = render("multi-pool")
    pools = [p["name"] for p in MULTI_POOL["pools"]]
    expected = {f"chorus-worker-{pool}" for pool in pools}

    assert expected <= set(by_name(manifests, "Deployment"))
    assert expected <= set(by_name(manifests, "Service"))
    assert expected <= set(by_name(manifests, "PodDisruptionBudget"))
    assert set(by_name(manifests, "ScaledObject")) == expected
    for name, scaled in by_name(manifests, "ScaledObject").items():
        pool = name.removeprefix("chorus-worker-")
        assert scaled["spec"]["scaleTargetRef"]["name"] == name
        redis = next(t for t in scaled["spec"]["triggers"] if t["type"] == "redis")
        assert redis["metadata"]["listName"] == pool
        assert redis["metadata"]["databaseIndex"] == "2"
        prometheus = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
        assert f'pool="{pool}"' in prometheus["metadata"]["query"]


def test_an_ai_pool_scales_on_its_outstanding_model_calls_too_and_an_absent_gauge_counts_as_zero() -> None:
    scaled = by_name(render("multi-pool"), "ScaledObject")
    queries = {
        name.removeprefix("chorus-worker-"): next(t for t in s["spec"]["triggers"] if t["type"] == "prometheus")
        for name, s in scaled.items()
    }
    counting = {p["name"] for p in MULTI_POOL["pools"] if p.get("countModelCalls")}

    assert counting == {"ai", "ai-batch"}
    for pool, trigger in queries.items():
        query = trigger["metadata"]["query"]
        assert (f'sum(chorus_llm_calls_in_flight{{pool="{pool}"}}) or vector(0)' in query) == (pool in counting)
        assert f'(sum(chorus_worker_celery_tasks_in_flight{{pool="{pool}"}}) or vector(0))' in query


def test_a_pool_may_scale_to_zero_with_keda_but_not_with_the_hpa_fallback() -> None:
    scaled = by_name(render("multi-pool"), "ScaledObject")
    hpas = by_name(render("default"), "HorizontalPodAutoscaler")

    assert scaled["chorus-worker-ai-batch"]["spec"]["minReplicaCount"] == 0
    assert hpas["chorus-worker-ai"]["spec"]["minReplicas"] == 1
    assert not list(of_kind(render("default"), "ScaledObject"))


def test_scale_down_waits_for_a_quiet_period_because_taken_messages_leave_the_list() -> None:
    for scaled in of_kind(render("keda"), "ScaledObject"):
        behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_workers_shut_down_gracefully_and_run_the_worker_command_of_their_pool() -> None:
    deployments = by_name(render("multi-pool"), "Deployment")
    for pool in MULTI_POOL["pools"]:
        spec = deployments[f"chorus-worker-{pool['name']}"]["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert spec["terminationGracePeriodSeconds"] == pool["terminationGracePeriodSeconds"]
        assert container["command"] == ["chorus", "worker", "--pool", pool["name"]]
        env = {e["name"]: e for e in container["env"]}
        assert env["CHORUS_WORKER_CONCURRENCY"]["value"] == str(pool["concurrency"])
        assert env["CHORUS_WORKER_POOL"]["value"] == pool.get("workerPool", "prefork")
        # Hand back what still runs before the grace period's SIGKILL, a margin ahead of it.
        margin = pool.get("drainMarginSeconds", MULTI_POOL.get("workers", {}).get("drainMarginSeconds", 15))
        assert env["CHORUS_WORKER_DRAIN_S"]["value"] == str(max(1, pool["terminationGracePeriodSeconds"] - margin))
        assert env["CHORUS_POOLS"]["value"] == '["control","io","scripts","ai","ai-batch"]'
        assert "secretKeyRef" in env["CHORUS_DATABASE_URL"]["valueFrom"]


def test_the_server_has_probes_and_takes_its_secrets_from_the_secret() -> None:
    server = by_name(render("default"), "Deployment")["chorus-server"]["spec"]["template"]["spec"]["containers"][0]

    # Readiness asks the database (out of the Service when it is away); liveness and startup do not.
    assert {p: server[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "startupProbe": "/health", "readinessProbe": "/health/ready", "livenessProbe": "/health"
    }  # fmt: skip
    for entry in server["env"]:
        assert "password" not in str(entry.get("value", "")).lower()


def test_migrations_run_as_a_hook_job_after_the_secret_exists() -> None:
    manifests = render("default")
    job = by_name(manifests, "Job")["chorus-migrate"]
    secret = by_name(manifests, "Secret")["chorus"]

    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["chorus", "migrate"]
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )


def test_optional_parts_are_off_by_default_and_on_in_the_multi_pool_values() -> None:
    default = {m["kind"] + "/" + m["metadata"]["name"] for m in render("default")}
    multi = {m["kind"] + "/" + m["metadata"]["name"] for m in render("multi-pool")}

    assert "Deployment/chorus-scheduler" in default  # Schedule triggers fire out of the box
    for optional in ("Deployment/chorus-flower", "ServiceMonitor/chorus-server"):
        assert optional not in default
        assert optional in multi
    assert {f"ConfigMap/chorus-chorus-{n}" for n in ("overview", "pools", "executions", "ai")} <= multi


def test_the_charts_dashboards_are_the_ones_under_deploy_grafana() -> None:
    source = ROOT / "deploy" / "grafana" / "dashboards"
    copies = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}

    assert copies == {p.name: p.read_text() for p in source.glob("*.json")}


def test_server_and_workers_share_the_internal_storage_claim() -> None:
    deployments = by_name(render("multi-pool"), "Deployment")
    for name in ["chorus-server", *(f"chorus-worker-{p['name']}" for p in MULTI_POOL["pools"])]:
        spec = deployments[name]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "chorus-data", name
        assert mounts["data"] == "/data", name


def test_a_pool_may_run_as_root_then_drop_to_a_scripts_user_while_the_others_stay_non_root() -> None:
    workers = {
        d["metadata"]["labels"]["chorus.io/pool"]: d["spec"]["template"]["spec"]["containers"][0]
        for d in render("multi-pool")
        if d["kind"] == "Deployment" and d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    }

    scripts = workers["scripts"]
    assert scripts["securityContext"]["runAsUser"] == 0
    assert scripts["securityContext"]["capabilities"] == {
        "drop": ["ALL"], "add": ["SETUID", "SETGID", "CHOWN", "FOWNER", "DAC_OVERRIDE", "KILL"]
    }  # fmt: skip
    assert {"name": "CHORUS_SCRIPTS_USER", "value": "nobody"} in scripts["env"]
    assert workers["io"]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not any(e["name"] == "CHORUS_SCRIPTS_USER" for e in workers["io"]["env"])


def test_only_the_migration_job_gets_the_migration_url_and_every_process_the_audit_key() -> None:
    manifests = render("multi-pool")
    containers = [
        (d["kind"], c)
        for d in manifests
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    chorus = [(kind, c) for kind, c in containers if c["command"][0] == "chorus"]

    for kind, container in chorus:
        names = {e["name"] for e in container["env"]}
        assert "CHORUS_AUDIT_KEY" in names
        assert ("CHORUS_MIGRATION_DATABASE_URL" in names) == (kind == "Job")


@pytest.mark.parametrize("values", VALUES)
def test_every_container_serving_metrics_binds_them_where_prometheus_can_scrape(values: str) -> None:
    containers = [c for m in of_kind(render(values), "Deployment") for c in m["spec"]["template"]["spec"]["containers"]]
    serving = [{e["name"]: e.get("value") for e in c["env"]} for c in containers]
    serving = [env for env in serving if "CHORUS_METRICS_PORT" in env]

    assert serving
    assert all(env.get("CHORUS_METRICS_HOST") == "0.0.0.0" for env in serving)


def test_the_server_trusts_no_proxy_unless_told_which() -> None:
    def server_env(values: dict[str, Any]) -> dict[str, str]:
        rendered = Chart.load(str(CHART)).render(values=values, name="chorus", namespace="chorus")
        docs = [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]
        server = by_name(docs, "Deployment")["chorus-server"]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in server["env"]}

    configured = {**REQUIRED, "server": {"trustedProxies": "10.42.0.0/16", "cookieSecure": "true"}}

    assert "CHORUS_TRUSTED_PROXIES" not in server_env(REQUIRED)
    assert server_env(configured)["CHORUS_TRUSTED_PROXIES"] == "10.42.0.0/16"
    assert server_env(configured)["CHORUS_COOKIE_SECURE"] == "true"
