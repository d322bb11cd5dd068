"""api.login_throttle: pairs lock out, an address as a whole is throttled, tokens count for the address only."""

from __future__ import annotations

import pytest

from api.login_throttle import LoginThrottle, TooManyAttempts


def throttle(address_max_failures: int = 10) -> LoginThrottle:
    return LoginThrottle(max_failures=3, window_s=60, lockout_s=30, address_max_failures=address_max_failures)


def test_a_pair_locks_after_its_failures_and_only_that_pair() -> None:
    t = throttle()
    for _ in range(3):
        t.failed("user:ann", "192.0.2.1")

    with pytest.raises(TooManyAttempts) as locked:
        t.check("user:ann", "192.0.2.1")
    assert 1 <= locked.value.retry_after_s <= 30
    t.check("user:ann", "192.0.2.2")  # the same account from elsewhere
    t.check("user:bob", "192.0.2.1")  # another account behind the same address


def test_an_address_is_throttled_past_its_ceiling_whatever_the_usernames() -> None:
    t = throttle(address_max_failures=4)
    for n in range(4):
        t.failed(f"user:{n}", "192.0.2.1")

    with pytest.raises(TooManyAttempts):
        t.check("user:someone-new", "192.0.2.1")
    with pytest.raises(TooManyAttempts):
        t.check(None, "192.0.2.1")
    t.check("user:someone-new", "192.0.2.2")


def test_token_guesses_count_for_the_address_and_lock_no_account() -> None:
    t = throttle(address_max_failures=3)
    for _ in range(2):
        t.failed(None, "192.0.2.1")
    t.check(None, "192.0.2.1")

    t.failed(None, "192.0.2.1")

    with pytest.raises(TooManyAttempts):
        t.check(None, "192.0.2.1")


def test_a_success_clears_the_pair_but_not_the_address_count() -> None:
    t = throttle(address_max_failures=4)
    for _ in range(2):
        t.failed("user:ann", "192.0.2.1")
    t.succeeded("user:ann", "192.0.2.1")
    t.failed("user:ann", "192.0.2.1")
    t.check("user:ann", "192.0.2.1")  # the pair starts again from one

    t.failed("user:bob", "192.0.2.1")  # the fourth failure of the address

    with pytest.raises(TooManyAttempts):
        t.check("user:carol", "192.0.2.1")
