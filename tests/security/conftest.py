"""Security tests reuse the in-process API fixtures (a fresh database, no worker) and the e2e stack."""

from tests.e2e.conftest import stack
from tests.integration.api.conftest import api_redis_url, auth_client, client, make_client

__all__ = ["api_redis_url", "auth_client", "client", "make_client", "stack"]
