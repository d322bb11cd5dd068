"""Security tests reuse the in-process API fixtures (a fresh database, no worker); the e2e stack (`stack`,
`deploy_flow`, `unique_namespace`) and Flower come from the root conftest's plugins, one per session."""

from tests.integration.api.conftest import api_redis_url, auth_client, client, make_client

__all__ = [
    "api_redis_url", "auth_client", "client", "make_client",
]  # fmt: skip
