"""deploy/compose: valid against the compose specification, and everything it references exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.cli.flower import FlowerSettings
from orchestrator.observability.metrics import MetricsSettings
from orchestrator.settings import DEFAULT_POOLS, Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yaml"
#: Ports third-party images listen on.
IMAGE_PORTS = {"redis_exporter": 9121, "postgres-exporter": 9187, "prometheus": 9090, "grafana": 3000}
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def dotenv() -> dict[str, str]:
    lines = (COMPOSE_DIR / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def listening_port(name: str, service: dict[str, Any]) -> int:
    env = service.get("environment", {})
    for variable in ("CHORUS_PORT", "CHORUS_FLOWER_PORT", "CHORUS_METRICS_PORT"):
        if variable in env:
            return int(env[variable])
    image = service["image"].split("/")[-1].split(":")[0]
    return IMAGE_PORTS[image]


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_interpolated_variable_has_a_value_or_a_default() -> None:
    defined = dotenv()
    for match in _INTERPOLATION.finditer(COMPOSE.read_text()):
        name, default = match.group(1), match.group(2) or ""
        assert name in defined or default.startswith((":-", "-")), f"${{{name}}} has no value in .env"


def test_every_chorus_variable_is_a_setting_chorus_reads() -> None:
    known = {
        prefix + field.upper()
        for model, prefix in (
            (Settings, "CHORUS_"),
            (MetricsSettings, "CHORUS_METRICS_"),
            (FlowerSettings, "CHORUS_FLOWER_"),
        )
        for field in model.model_fields
    }
    for name, service in services().items():
        for variable in service.get("environment", {}):
            if variable.startswith("CHORUS_"):
                assert variable in known, f"{name}: {variable} is no Chorus setting"


def test_every_chorus_command_exists_in_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    for name, service in services().items():
        command = service.get("command", [])
        if not command or command[0] != "chorus":
            continue
        with pytest.raises(SystemExit) as exit_:
            main([*command[1:], "--help"])
        assert exit_.value.code == 0, f"{name}: `{' '.join(command)}` is not a chorus command"
    capsys.readouterr()


def test_there_is_one_worker_service_per_pool() -> None:
    pools = {
        service["command"][3]: name
        for name, service in services().items()
        if service.get("command", [])[:3] == ["chorus", "worker", "--pool"]
    }

    assert set(pools) == set(DEFAULT_POOLS)
    assert all(name == f"worker-{pool}" for pool, name in pools.items())


def test_every_file_the_stack_mounts_or_builds_from_exists() -> None:
    for name, service in services().items():
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source}"
            else:
                assert source in compose()["volumes"], f"{name}: undeclared volume {source}"


def test_every_path_the_dockerfile_copies_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_images_are_pinned_to_a_version() -> None:
    for name, service in services().items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_published_ports_are_the_ports_the_services_listen_on() -> None:
    for name, service in services().items():
        for mapping in service.get("ports", []):
            mapping = mapping.split("#")[0].strip()
            assert int(mapping.rsplit(":", 1)[1]) == listening_port(name, service), f"{name}: {mapping}"


def test_prometheus_scrapes_every_chorus_service_on_the_port_it_serves_metrics() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    by_service = dict(target.split(":") for target in targets if not target.startswith("localhost"))

    for host, port in by_service.items():
        assert host in services(), f"scrape target {host} is no service"
        assert int(port) == listening_port(host, services()[host]), f"{host}:{port}"
    unscraped = set(services()) - set(by_service) - {"postgres", "redis", "migrate", "grafana", "prometheus"}
    assert not unscraped


def test_dashboards_job_names_are_the_ones_prometheus_uses() -> None:
    jobs = {job["job_name"] for job in yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())["scrape_configs"]}

    assert {"chorus-server", "chorus-workers"} <= jobs


def test_promtool_accepts_the_scrape_configuration() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (.ci/run installs it)"

    done = subprocess.run([promtool, "check", "config", str(COMPOSE_DIR / "prometheus.yml")], capture_output=True)

    assert done.returncode == 0, done.stdout + done.stderr


def test_processes_start_after_migrations_and_a_healthy_broker() -> None:
    for name in ("server", "worker-control", "worker-io", "worker-scripts", "worker-ai", "scheduler", "flower"):
        depends = services()[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services()["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_chorus_process_shares_the_internal_storage_volume() -> None:
    for name, service in services().items():
        if service.get("command", [""])[0] == "chorus":
            assert "chorus-data:/data" in service["volumes"], name
            assert service["environment"]["CHORUS_DATA_DIR"] == "/data", name


def test_every_metrics_port_is_reachable_by_prometheus_although_the_default_host_is_loopback() -> None:
    assert MetricsSettings().host == "127.0.0.1"  # a bare `chorus worker` exposes nothing beyond the machine
    for name, service in services().items():
        if "CHORUS_METRICS_PORT" in service.get("environment", {}):
            assert service["environment"].get("CHORUS_METRICS_HOST") == "0.0.0.0", name
