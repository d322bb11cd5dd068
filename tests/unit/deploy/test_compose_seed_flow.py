"""deploy/compose runs the seed flow: flow secrets reach every Chorus process, ports stay on loopback."""

from __future__ import annotations

import base64
import re

from orchestrator.settings import load_settings
from tests.unit.deploy.test_compose import COMPOSE, COMPOSE_DIR, ROOT, dotenv, services

#: Services running Chorus (they share the x-chorus anchor).
CHORUS_SERVICES = {"migrate", "server", "worker-control", "worker-io", "worker-scripts", "worker-ai", "scheduler",
                   "flower"}  # fmt: skip


def test_every_published_port_binds_loopback_unless_told_otherwise() -> None:
    published = [(name, m) for name, s in services().items() for m in s.get("ports", [])]

    assert published
    for name, mapping in published:
        address = mapping.replace("${CHORUS_PUBLISH_ADDRESS:-127.0.0.1}", "127.0.0.1").split(":")[0]
        assert address == "127.0.0.1", f"{name}: {mapping}"


def test_every_chorus_service_reads_flow_secrets_from_an_env_file_and_a_secrets_directory() -> None:
    for name in CHORUS_SERVICES:
        service = services()[name]
        assert {"path": "secrets.env", "required": False} in service["env_file"], name
        assert "./secrets:/etc/chorus/secrets:ro" in service["volumes"], name
        assert service["environment"]["CHORUS_SECRETS_DIR"] == "/etc/chorus/secrets", name


def test_the_example_secrets_file_names_every_secret_the_seed_flow_reads_in_base64() -> None:
    flow = (ROOT / "examples" / "customer-feedback-analysis.deploy.yaml").read_text()
    wanted = set(re.findall(r"secret\('([A-Z_]+)'\)", flow))
    lines = (COMPOSE_DIR / "secrets.env.example").read_text().splitlines()
    given = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    assert wanted and {f"SECRET_{n}" for n in wanted} == set(given)
    for value in given.values():
        assert base64.b64encode(base64.b64decode(value, validate=True)).decode() == value


def test_real_secrets_stay_out_of_git() -> None:
    ignored = (COMPOSE_DIR / ".gitignore").read_text().splitlines()

    assert {"secrets.env", "secrets/*"} <= set(ignored)
    assert (COMPOSE_DIR / "secrets").is_dir()


def test_the_dev_redis_password_holds_reserved_characters_and_chorus_builds_a_valid_url_from_it() -> None:
    password = dotenv()["REDIS_PASSWORD"].strip("'")
    broker = services()["server"]["environment"]["CHORUS_BROKER_URL"]

    assert set("@:/#") <= set(password)
    assert "REDIS_PASSWORD" not in broker  # the password travels on its own
    settings = load_settings(broker_url=broker, redis_password=password)
    assert settings.broker_url.endswith("@redis:6379/0")


def test_no_comment_promises_a_command_that_already_exists() -> None:
    text = COMPOSE.read_text() + (COMPOSE_DIR / "README.md").read_text()

    assert "arrives with" not in text


def test_workers_are_healthy_only_while_their_consumer_touches_the_alive_file() -> None:
    for pool in ("control", "io", "scripts", "ai"):
        service = services()[f"worker-{pool}"]
        assert service["environment"]["CHORUS_WORKER_ALIVE_FILE"] == "/tmp/chorus-worker.alive"
        assert "/tmp/chorus-worker.alive" in " ".join(service["healthcheck"]["test"])
