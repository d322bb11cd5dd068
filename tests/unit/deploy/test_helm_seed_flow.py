"""The chart carries what the seed flow needs: flow secrets, extra env, the scheduler, shared storage, safe probes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helm_python.chart import Chart

from orchestrator.settings import load_settings
from tests.unit.deploy.test_helm_chart import (
    CHART,
    CRD_KINDS,
    KEDA_SCHEMA,
    KUBERNETES_VERSION,
    REQUIRED,
    Manifest,
    by_name,
    write,
)

PASSWORD = "p@ss:w/rd#1"
SEED = {
    **REQUIRED,
    "redis": {"host": "redis-master.data", "password": PASSWORD},
    "flowSecrets": {"envSecret": "chorus-flow-secrets", "directorySecret": "chorus-flow-files"},
    "extraEnv": [{"name": "CHORUS_GLOBALS", "value": '{"team": "platform"}'}],
    "server": {"extraEnv": [{"name": "CHORUS_WAIT_TIMEOUT_S", "value": "60"}]},
    "pools": [
        {"name": "control", "concurrency": 2, "replicas": 1, "minReplicas": 1, "maxReplicas": 2,
         "targetQueueLength": 5, "terminationGracePeriodSeconds": 60, "resources": {}},
        {"name": "ai", "concurrency": 4, "replicas": 1, "minReplicas": 0, "maxReplicas": 4, "targetQueueLength": 5,
         "terminationGracePeriodSeconds": 900, "maxCallSeconds": 600, "cooldownPeriodSeconds": 1200,
         "preStop": ["sleep", "5"], "resources": {},
         "extraEnv": [{"name": "CHORUS_LLM", "valueFrom": {"configMapKeyRef": {"name": "chorus-llm", "key": "llm"}}}]},
    ],
    "autoscaling": {"mode": "keda"},
    "flower": {"enabled": True, "password": "flower-secret-1"},
}  # fmt: skip


def render(values: dict[str, Any]) -> list[Manifest]:
    rendered = Chart.load(str(CHART)).render(values=values, name="chorus", namespace="chorus")
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def chorus_containers(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    """Container of each Deployment running `chorus`, by Deployment name."""
    return {
        m["metadata"]["name"]: m["spec"]["template"]["spec"]["containers"][0]
        for m in manifests
        if m["kind"] == "Deployment" and m["spec"]["template"]["spec"]["containers"][0]["command"][0] == "chorus"
    }


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def test_the_seed_values_render_manifests_valid_against_the_kubernetes_schemas(tmp_path: Path) -> None:
    core = [m for m in render(SEED) if m["kind"] not in CRD_KINDS]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "-k", KUBERNETES_VERSION, "--strict", "--quiet",
         str(write(core, tmp_path / "core.yaml"))],
        capture_output=True, text=True,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert helm_python.lint(str(CHART), SEED, strict=True, kube_version=KUBERNETES_VERSION)["errors"] == []


def test_the_seed_scaled_objects_validate_against_the_keda_crd_schema(tmp_path: Path) -> None:
    scaled = list(by_name(render(SEED), "ScaledObject").values())
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(KEDA_SCHEMA),
         *(str(write([m], tmp_path / f"{m['metadata']['name']}.yaml")) for m in scaled)],
        capture_output=True, text=True,
    )  # fmt: skip

    assert len(scaled) == 2
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_chorus_process_gets_the_secret_backed_secret_variables_and_the_secrets_dir() -> None:
    manifests = render(SEED)
    containers = chorus_containers(manifests)

    assert {"chorus-server", "chorus-scheduler", "chorus-flower", "chorus-worker-control", "chorus-worker-ai"} <= set(
        containers
    )
    for name, container in containers.items():
        assert {"secretRef": {"name": "chorus-flow-secrets"}} in container["envFrom"], name
        assert env_of(container)["CHORUS_SECRETS_DIR"]["value"] == "/etc/chorus/secrets", name
        mount = next(m for m in container["volumeMounts"] if m["name"] == "flow-secrets")
        assert mount == {"name": "flow-secrets", "mountPath": "/etc/chorus/secrets", "readOnly": True}, name
        assert env_of(container)["CHORUS_GLOBALS"]["value"] == '{"team": "platform"}', name
    for deployment in (m for m in manifests if m["metadata"]["name"] in containers and m["kind"] == "Deployment"):
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        # Group-readable only: a scripts pool's script user cannot read the secret files.
        assert volumes["flow-secrets"]["secret"] == {"secretName": "chorus-flow-files", "defaultMode": 0o440}


def test_a_components_own_extra_env_reaches_only_that_component() -> None:
    containers = chorus_containers(render(SEED))

    assert "CHORUS_LLM" in env_of(containers["chorus-worker-ai"])
    assert "CHORUS_LLM" not in env_of(containers["chorus-worker-control"])
    assert env_of(containers["chorus-server"])["CHORUS_WAIT_TIMEOUT_S"]["value"] == "60"
    assert "CHORUS_WAIT_TIMEOUT_S" not in env_of(containers["chorus-scheduler"])


def test_the_scheduler_runs_by_default_with_the_same_storage_and_env_as_the_rest() -> None:
    scheduler = by_name(render(REQUIRED), "Deployment")["chorus-scheduler"]["spec"]["template"]["spec"]

    assert scheduler["containers"][0]["command"] == ["chorus", "scheduler"]
    assert {v["name"]: v for v in scheduler["volumes"]}["data"]["persistentVolumeClaim"]["claimName"] == "chorus-data"


def test_a_redis_password_with_reserved_characters_stays_out_of_the_url_and_settings_encode_it() -> None:
    manifests = render(SEED)
    secret = by_name(manifests, "Secret")["chorus"]["stringData"]
    worker = env_of(chorus_containers(manifests)["chorus-worker-control"])

    assert secret["broker-url"] == "redis://redis-master.data:6379/0"
    assert secret["redis-password"] == PASSWORD
    assert worker["CHORUS_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "redis-password"
    # What a worker builds from those two values: a URL every parser reads back to the right host.
    settings = load_settings(broker_url=secret["broker-url"], redis_password=secret["redis-password"])
    assert settings.broker_url == "redis://:p%40ss%3Aw%2Frd%231@redis-master.data:6379/0"


def test_storage_is_one_read_write_many_claim_shared_by_every_pod_by_default() -> None:
    manifests = render(REQUIRED)
    claim = by_name(manifests, "PersistentVolumeClaim")["chorus-data"]

    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, deployment in by_name(manifests, "Deployment").items():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "chorus-data"}}, name


def test_without_a_shared_claim_the_chart_refuses_unless_pod_local_storage_is_accepted() -> None:
    no_claim = {**REQUIRED, "storage": {"persistence": {"enabled": False}}}

    with pytest.raises(helm_python.HelmError) as error:
        render(no_claim)

    assert "must share /data" in str(error.value)
    accepted = render({**REQUIRED, "storage": {"persistence": {"enabled": False}, "podLocal": True}})
    server = by_name(accepted, "Deployment")["chorus-server"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in server["volumes"]}["data"]["emptyDir"] == {}
    assert not by_name(accepted, "PersistentVolumeClaim")


def test_worker_liveness_reads_the_file_the_consumer_touches_not_the_metrics_port() -> None:
    for name, container in chorus_containers(render(SEED)).items():
        if not name.startswith("chorus-worker-"):
            continue
        command = container["livenessProbe"]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert command[3] == env_of(container)["CHORUS_WORKER_ALIVE_FILE"]["value"] == "/tmp/chorus-worker.alive"
        assert float(command[4]) == 3 * float(env_of(container)["CHORUS_WORKER_ALIVE_INTERVAL_S"]["value"])


def test_the_liveness_one_liner_fails_on_a_stale_or_missing_file_and_passes_on_a_fresh_one(tmp_path: Path) -> None:
    worker = chorus_containers(render(SEED))["chorus-worker-control"]
    _, flag, code, _, max_age = worker["livenessProbe"]["exec"]["command"]
    alive = tmp_path / "alive"

    def probe() -> int:
        return subprocess.run([sys.executable, flag, code, str(alive), max_age], capture_output=True).returncode

    assert probe() == 1
    alive.touch()
    assert probe() == 0
    old = alive.stat().st_mtime - 3600
    os.utime(alive, (old, old))
    assert probe() == 1


def test_a_pool_scaling_to_zero_keeps_its_calls_its_cooldown_and_its_pre_stop() -> None:
    manifests = render(SEED)
    scaled = by_name(manifests, "ScaledObject")["chorus-worker-ai"]["spec"]
    pod = by_name(manifests, "Deployment")["chorus-worker-ai"]["spec"]["template"]["spec"]

    assert scaled["minReplicaCount"] == 0
    assert scaled["cooldownPeriod"] == 1200
    assert pod["terminationGracePeriodSeconds"] == 900
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    redis_trigger = next(t for t in scaled["triggers"] if t["type"] == "redis")
    assert redis_trigger["metadata"]["passwordFromEnv"] == "CHORUS_REDIS_PASSWORD"


@pytest.mark.parametrize("mode", ["keda", "hpa"])
def test_a_grace_period_shorter_than_the_longest_call_is_refused_naming_the_pool(mode: str) -> None:
    short = {
        **SEED,
        "pools": [{**SEED["pools"][1], "terminationGracePeriodSeconds": 300}],
        "autoscaling": {"mode": mode},
    }

    with pytest.raises(helm_python.HelmError) as error:
        render(short)

    assert "pools[ai]: terminationGracePeriodSeconds (300) must exceed maxCallSeconds (600)" in str(error.value)
