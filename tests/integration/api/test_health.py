"""`/health` is liveness (no database), `/health/ready` is readiness (the database answers a query)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from orchestrator.settings import load_settings
from tests.harness import services

from .conftest import AppFactory


def test_ready_says_up_once_the_database_answers(make_client: AppFactory) -> None:
    response = make_client().get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "UP", "checks": {"database": "UP"}}


def test_ready_is_503_naming_the_database_when_it_goes_away_while_liveness_stays_up(
    admin_url: str, template_database: str, api_redis_url: str
) -> None:
    name = services.unique_database_name("ready")
    url = services.create_database(admin_url, name, template=template_database)
    settings = load_settings(database_url=url, broker_url=api_redis_url)
    with TestClient(create_app(settings, sweeper=False), base_url="http://127.0.0.1") as client:
        assert client.get("/health/ready").status_code == 200
        services.drop_database(admin_url, name)

        response = client.get("/health/ready")
        live = client.get("/health")

    assert response.status_code == 503
    assert response.json() == {"status": "DOWN", "checks": {"database": "DOWN"}}
    assert live.status_code == 200


def test_ready_needs_no_credentials_like_liveness(make_client: AppFactory) -> None:
    client = make_client(admin_username="admin", admin_password="admin-password-1")

    assert client.get("/health/ready").status_code == 200
