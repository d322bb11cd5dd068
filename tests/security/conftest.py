"""Security tests reuse the in-process API fixtures (a fresh database, no worker) and Flower; the e2e stack
(`stack`, `deploy_flow`, `unique_namespace`) comes from the root conftest's plugin, one per session."""

from tests.e2e.test_flower_retry import flower
from tests.integration.api.conftest import api_redis_url, auth_client, client, make_client

__all__ = [
    "api_redis_url", "auth_client", "client", "flower", "make_client",
]  # fmt: skip
