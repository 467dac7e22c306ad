"""Sign-in throttling: a bucket of failures per key (an account, an address). A key with no
failures left is refused with 429 and when to retry, before any password is checked."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

from ..errors import RateLimited

if TYPE_CHECKING:
    from ..store.interfaces import RateBuckets

ACCOUNT_FAILURES = 10   # failures allowed at once for one account ...
ADDRESS_FAILURES = 50   # ... and from one address (several people behind one NAT)
REFILL_SECONDS = 60.0   # one more allowed failure per minute
SWEEP_EVERY = 1000      # failures between two sweeps of full buckets


class SignInThrottle:
    """A bucket of failures per key, kept in the storage's `RateBuckets`: every process and
    node of a registry counts the same failures."""

    def __init__(self, failures: int, buckets: RateBuckets, prefix: str,
                 refill_seconds: float = REFILL_SECONDS) -> None:
        self.failures, self.refill = failures, refill_seconds
        self._buckets, self._prefix = buckets, prefix
        self._fails = itertools.count()

    def check(self, key: str, what: str) -> None:
        """Raise RateLimited when `key` has no failures left."""
        left = self._buckets.level(self._prefix + key, rate=1 / self.refill,
                                   burst=self.failures, now=time.time())
        if left < 1:
            wait = max(1, int((1 - left) * self.refill + 0.999))
            raise RateLimited(f"too many failed sign-ins for {what}; try again in {wait} s",
                              extra={"retry_after": wait})

    def fail(self, key: str) -> None:
        now = time.time()
        self._buckets.take(self._prefix + key, 1, rate=1 / self.refill, burst=self.failures,
                           now=now, force=True)
        if next(self._fails) % SWEEP_EVERY == SWEEP_EVERY - 1:  # bounded under a spray
            self._buckets.sweep(self._prefix, rate=1 / self.refill, burst=self.failures,
                                now=now)
