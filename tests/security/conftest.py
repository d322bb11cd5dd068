"""Security tests reuse the in-process API fixtures (a fresh database, no worker), the e2e stack and Flower."""

from tests.e2e.conftest import deploy_flow, stack, unique_namespace
from tests.e2e.test_flower_retry import flower
from tests.integration.api.conftest import api_redis_url, auth_client, client, make_client

__all__ = [
    "api_redis_url", "auth_client", "client", "deploy_flow", "flower", "make_client", "stack", "unique_namespace",
]  # fmt: skip
