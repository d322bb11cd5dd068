"""Connection URLs in settings: passwords with reserved characters encoded, unparsable URLs refused by name."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import load_settings
from orchestrator.urls import redis_url, with_password

PASSWORD = "p@ss:w/rd#1"


def test_a_built_redis_url_carries_the_password_percent_encoded_and_parses_back() -> None:
    url = redis_url("redis.data", 6380, 2, PASSWORD)

    assert url == "redis://:p%40ss%3Aw%2Frd%231@redis.data:6380/2"
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("redis.data", 6380, "/2")


def test_with_password_keeps_the_user_the_ipv6_host_and_the_query() -> None:
    url = with_password("rediss://chorus@[::1]:6379/0?ssl_cert_reqs=required", "a b")

    assert url == "rediss://chorus:a%20b@[::1]:6379/0?ssl_cert_reqs=required"


def test_the_redis_password_variable_goes_into_the_broker_and_result_urls_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHORUS_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("CHORUS_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("CHORUS_RESULT_BACKEND", "redis://redis:6379/1")

    settings = load_settings()

    assert settings.broker_url == "redis://:p%40ss%3Aw%2Frd%231@redis:6379/0"
    assert settings.effective_result_backend == "redis://:p%40ss%3Aw%2Frd%231@redis:6379/1"


def test_a_password_already_in_the_url_wins_over_the_variable() -> None:
    settings = load_settings(redis_password="other", broker_url="redis://:mine@redis:6379/0")

    assert settings.broker_url == "redis://:mine@redis:6379/0"


def test_an_empty_password_variable_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_REDIS_PASSWORD", "")

    assert load_settings(broker_url="redis://redis:6379/0").broker_url == "redis://redis:6379/0"


@pytest.mark.parametrize(
    ("variable", "url", "reason"),
    [
        ("CHORUS_BROKER_URL", f"redis://:{PASSWORD}@redis:6379/0", "cannot be parsed"),
        ("CHORUS_BROKER_URL", "redis://redis:6379/0#secret", "'#' fragment"),
        ("CHORUS_BROKER_URL", "redis://:secret@/0", "names no host"),
        ("CHORUS_BROKER_URL", "redis://redis:6379/zero", "Redis database number"),
        ("CHORUS_RESULT_BACKEND", f"redis://:{PASSWORD}@redis:6379/1", "cannot be parsed"),
        ("CHORUS_DATABASE_URL", f"postgresql+psycopg://chorus:{PASSWORD}@db:5432/chorus", "cannot be parsed"),
        ("CHORUS_MIGRATION_DATABASE_URL", "postgresql://chorus:pw@db:99999/chorus", "not a number from 0 to 65535"),
    ],
)
def test_an_unparsable_url_is_refused_at_start_naming_its_variable_and_never_echoing_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str, reason: str
) -> None:
    monkeypatch.setenv(variable, url)

    with pytest.raises(ConfigurationError) as error:
        load_settings()

    assert error.value.name == variable
    assert reason in str(error.value)
    assert "percent-encode" in str(error.value)
    assert "secret" not in str(error.value) and "rd#1" not in str(error.value)


def test_a_postgres_url_over_a_socket_directory_needs_no_host() -> None:
    url = "postgresql+psycopg://chorus@/chorus?host=/run/postgresql"

    assert load_settings(database_url=url).database_url == url
