"""What of a notification's URL an operator sees once its request is erased: scheme and host, no credentials."""

from __future__ import annotations

import pytest

from orchestrator.engine.notification_outbox import target_of


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com"),
        ("https://user:pa55@chat.example.com:8443/hook?key=abc", "https://chat.example.com:8443"),
    ],
)
def test_a_target_keeps_the_scheme_and_host_only(url: str, target: str) -> None:
    assert target_of(url) == target
