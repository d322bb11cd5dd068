"""`chorus flower` settings: credentials in its environment, not its command line; no open API off loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.flower import FlowerSettings, check, flower_command, flower_environment
from orchestrator.core.errors import ConfigurationError


def test_credentials_go_to_flowers_environment_and_not_to_its_command_line() -> None:
    settings = FlowerSettings(address="0.0.0.0", port=5555, username="ops", password="s3cret-pass")

    check(settings)

    assert flower_environment(settings) == {"FLOWER_BASIC_AUTH": "ops:s3cret-pass"}
    assert not any("s3cret" in part for part in flower_command(settings))
    assert flower_command(settings)[-4:] == ["workers.app", "flower", "--address=0.0.0.0", "--port=5555"]


def test_flower_beyond_loopback_without_credentials_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError) as error:
        check(FlowerSettings(address="0.0.0.0"))

    assert error.value.name == "CHORUS_FLOWER_USERNAME"


def test_a_user_without_a_password_is_refused() -> None:
    with pytest.raises(ConfigurationError) as error:
        check(FlowerSettings(username="ops"))

    assert error.value.name == "CHORUS_FLOWER_PASSWORD"


def test_on_loopback_without_credentials_flowers_api_is_open() -> None:
    settings = FlowerSettings()

    check(settings)

    assert flower_environment(settings) == {"FLOWER_UNAUTHENTICATED_API": "true"}


def test_flower_keeps_its_state_in_the_given_file(tmp_path: Path) -> None:
    argv = flower_command(FlowerSettings(), tmp_path / "flower-state")

    assert argv[-3:] == ["--persistent=True", f"--db={tmp_path / 'flower-state'}", "--state_save_interval=10000"]
