"""The e2e stack's fixtures live in tests/harness/stack.py, a plugin of the root conftest, so every test
directory that asks for `stack` gets the one session stack (a second stack on the same Redis database would
have its workers take the first one's messages). The names tests import from here stay importable."""

from tests.harness.stack import Stack

__all__ = ["Stack"]
