"""Sign-in throttling: a bucket of failures per key (an account, an address). A key with no
failures left is refused with 429 and when to retry, before any password is checked."""

from __future__ import annotations

import threading
import time

from ..errors import RateLimited

ACCOUNT_FAILURES = 10   # failures allowed at once for one account ...
ADDRESS_FAILURES = 50   # ... and from one address (several people behind one NAT)
REFILL_SECONDS = 60.0   # one more allowed failure per minute


class SignInThrottle:
    """In memory, per process (several workers each keep their own count)."""

    def __init__(self, failures: int, refill_seconds: float = REFILL_SECONDS) -> None:
        self.failures, self.refill = failures, refill_seconds
        self._left: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, what: str) -> None:
        """Raise RateLimited when `key` has no failures left."""
        with self._lock:
            left = self._level(key)
        if left < 1:
            wait = max(1, int((1 - left) * self.refill + 0.999))
            raise RateLimited(f"too many failed sign-ins for {what}; try again in {wait} s",
                              extra={"retry_after": wait})

    def fail(self, key: str) -> None:
        with self._lock:
            self._left[key] = (self._level(key) - 1, time.monotonic())
            if len(self._left) > 100_000:  # bounded memory under a spray of addresses
                self._left = dict(list(self._left.items())[-50_000:])

    def _level(self, key: str) -> float:
        now = time.monotonic()
        level, since = self._left.get(key, (float(self.failures), now))
        return min(float(self.failures), level + (now - since) / self.refill)
