"""Flower for Chorus: its settings (`CHORUS_FLOWER_*`), and the command and environment that start it.

Flower loads the worker app (`workers.app`) so its HTTP API can re-apply Chorus tasks by name; the
credentials travel in Flower's own environment variables, never on the command line.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.errors import ConfigurationError

WORKER_APP = "workers.app"


class FlowerSettings(BaseSettings):
    """How `chorus flower` serves Flower."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_FLOWER_", extra="ignore", frozen=True)

    address: str = Field(default="127.0.0.1", description="Address Flower binds.")
    port: int = Field(default=5555, ge=1, le=65535, description="Port Flower binds.")
    username: str | None = Field(default=None, min_length=1, description="Basic-auth user of Flower's UI and API.")
    password: SecretStr | None = Field(default=None, min_length=8, description="Basic-auth password.")
    url_prefix: str = Field(default="", description="Path prefix when Flower sits behind a reverse proxy.")
    persistent: bool = Field(
        default=True, description="Keep the tasks Flower saw across its restarts (in CHORUS_FLOWER_DB)."
    )
    db: Path | None = Field(default=None, description="Flower's state file (default: flower-state in the data dir).")

    @property
    def loopback_only(self) -> bool:
        if self.address == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return False


def check(settings: FlowerSettings) -> None:
    """Refuse a Flower reachable beyond loopback without credentials (its API can re-apply any task)."""
    if (settings.username is None) != (settings.password is None):
        raise ConfigurationError("CHORUS_FLOWER_PASSWORD", "CHORUS_FLOWER_USERNAME and _PASSWORD go together")
    if settings.username is None and not settings.loopback_only:
        raise ConfigurationError(
            "CHORUS_FLOWER_USERNAME",
            f"Flower on {settings.address} needs CHORUS_FLOWER_USERNAME and CHORUS_FLOWER_PASSWORD (or bind 127.0.0.1)",
        )


#: How often a persistent Flower saves its state (ms): a killed Flower loses at most this much.
STATE_SAVE_INTERVAL_MS = 10_000


def flower_command(settings: FlowerSettings, state_file: Path | None = None) -> list[str]:
    """The argv of Flower for the Chorus worker app; with `state_file`, in persistent mode.

    Flower learns of tasks only from the events it receives: persistence keeps what it saw across its own
    restarts (a task run that ended while no Flower ran is found from its execution: the attempt's celeryTaskId).
    """
    argv = [
        sys.executable, "-m", "celery", "-A", WORKER_APP, "flower",
        f"--address={settings.address}", f"--port={settings.port}",
    ]  # fmt: skip
    if state_file is not None:
        argv += ["--persistent=True", f"--db={state_file}", f"--state_save_interval={STATE_SAVE_INTERVAL_MS}"]
    if settings.url_prefix:
        argv.append(f"--url_prefix={settings.url_prefix}")
    return argv


def flower_environment(settings: FlowerSettings) -> dict[str, str]:
    """Flower's own variables: basic auth, or an open API on loopback only."""
    if settings.username is not None and settings.password is not None:
        return {"FLOWER_BASIC_AUTH": f"{settings.username}:{settings.password.get_secret_value()}"}
    # Without credentials Flower refuses API calls; `check` allowed this only on loopback.
    return {"FLOWER_UNAUTHENTICATED_API": "true"}
