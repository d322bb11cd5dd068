"""Brute-force protection: failed logins lock an (account, client address) pair, and throttle an address.

After `max_failures` failures within `window_s`, the pair is locked for `lockout_s`, doubled at each
further lockout (capped at 15 minutes); while locked every attempt, right or wrong, is a 429 with
Retry-After, so guessing gets no answer at all. A success clears the pair. Keying on the pair means a
guesser behind a NAT locks that account for that address only, never for everyone else.

Every failure, whatever the username and also a token guessed (header, console login or session cookie),
also counts against its address: past `address_max_failures` in the window the address is throttled the
same way. That bounds spraying many usernames or tokens from one place; it locks no account, and a
success does not clear it (one valid login must not reset a spray). Counters live in this process's
memory: each API replica limits on its own, which bounds a guesser's rate per replica.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from orchestrator.core.errors import ChorusError

_MAX_LOCKOUT_S = 900.0
#: Forget pairs idle this long, so a flood of made-up usernames cannot grow memory without bound.
_IDLE_S = 3600.0
_MAX_TRACKED = 100_000


class TooManyAttempts(ChorusError):
    """Raised when a username from one address, or one address overall, failed to log in too often."""

    def __init__(self, retry_after_s: float) -> None:
        self.path = "authorization"
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"too many failed logins; try again in {self.retry_after_s} s")


@dataclass
class _Record:
    failures: int = 0
    first_failure_at: float = 0.0
    locked_until: float = 0.0
    lockouts: int = 0
    seen_at: float = 0.0


class LoginThrottle:
    def __init__(
        self, *, max_failures: int, window_s: float, lockout_s: float, address_max_failures: int | None = None
    ) -> None:
        self.max_failures = max_failures
        self.address_max_failures = address_max_failures or max_failures * 10
        self.window_s = window_s
        self.lockout_s = lockout_s
        #: (who, address) pairs, and (None, address) for the address's own count.
        self._records: dict[tuple[str | None, str], _Record] = {}
        self._lock = threading.Lock()

    def check(self, who: str | None, address: str) -> None:
        """Raise TooManyAttempts while the pair, or the address as a whole, is locked out."""
        now = time.monotonic()
        with self._lock:
            for key in ((who, address), (None, address)) if who is not None else ((None, address),):
                record = self._records.get(key)
                if record is not None and record.locked_until > now:
                    raise TooManyAttempts(record.locked_until - now)

    def failed(self, who: str | None, address: str) -> None:
        """Count a failure of `who` (None: a token, which names no account) from `address`."""
        now = time.monotonic()
        with self._lock:
            if len(self._records) >= _MAX_TRACKED:
                self._forget_idle(now)
            if who is not None:
                self._count(self._records.setdefault((who, address), _Record()), now, self.max_failures)
            self._count(self._records.setdefault((None, address), _Record()), now, self.address_max_failures)

    def succeeded(self, who: str | None, address: str) -> None:
        if who is None:
            return
        with self._lock:
            self._records.pop((who, address), None)

    def _count(self, record: _Record, now: float, limit: int) -> None:
        if now - record.first_failure_at > self.window_s:
            record.failures, record.first_failure_at = 0, now
        record.failures += 1
        record.seen_at = now
        if record.failures >= limit:
            record.locked_until = now + min(self.lockout_s * 2**record.lockouts, _MAX_LOCKOUT_S)
            record.lockouts += 1
            record.failures, record.first_failure_at = 0, now

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, r in self._records.items() if now - r.seen_at > _IDLE_S and r.locked_until < now]:
            del self._records[key]
        if len(self._records) >= _MAX_TRACKED:
            self._records.clear()  # under a flood, forgetting beats running out of memory
