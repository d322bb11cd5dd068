"""When requests must authenticate, and when the server refuses to listen at all."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import Settings, load_settings


def settings(**overrides: object) -> Settings:
    return load_settings(**overrides)


def test_no_credentials_on_loopback_means_anonymous_admin() -> None:
    config = settings(host="127.0.0.1")

    assert not config.auth_required
    config.refuse_unsafe_bind()


def test_a_configured_admin_makes_auth_required_even_on_loopback() -> None:
    assert settings(admin_username="admin", admin_password="long-enough").auth_required


def test_a_non_loopback_host_without_credentials_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(host="0.0.0.0").refuse_unsafe_bind()

    assert caught.value.name == "CHORUS_HOST"
    assert "CHORUS_ADMIN_USERNAME" in caught.value.message


def test_auth_cannot_be_switched_off_beyond_loopback() -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(
            host="10.0.0.5", auth_enabled=False, admin_username="a", admin_password="long-enough"
        ).refuse_unsafe_bind()

    assert caught.value.name == "CHORUS_AUTH_ENABLED"


def test_a_non_loopback_host_with_an_admin_is_accepted() -> None:
    settings(host="0.0.0.0", admin_username="admin", admin_password="long-enough").refuse_unsafe_bind()


def test_admin_username_and_password_come_together() -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(admin_username="admin")

    assert "CHORUS_ADMIN_PASSWORD" in caught.value.message


def test_the_admin_password_is_never_shown() -> None:
    assert "long-enough" not in repr(settings(admin_username="admin", admin_password="long-enough"))
