"""A per-client-address rate limit for the login and token endpoints (``settings.auth_rate_per_minute``): a
sliding one-minute window in process memory. Over the limit the endpoint answers 429 with ``Retry-After``; the first
refusal of a key in a window is audited (``first_refusal``), not each one, so a flood stays cheap."""

from __future__ import annotations

import time
from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._reported: dict[str, float] = {}  # key -> when its last refusal was reported

    def hit(self, key: str) -> int:
        """Count one attempt by ``key``; 0 when allowed, else the seconds to wait (for ``Retry-After``)."""
        now = time.monotonic()
        q = self._hits.get(key)
        if q is None:
            if len(self._hits) > 50_000:
                self._hits.clear()
            q = self._hits[key] = deque()
        while q and now - q[0] >= self.window:
            q.popleft()
        if len(q) >= self.per_minute:
            return max(1, int(self.window - (now - q[0])) + 1)
        q.append(now)
        return 0

    def first_refusal(self, key: str) -> bool:
        """True for the first refusal of ``key`` in a window (the one to audit); False for the rest of it."""
        now = time.monotonic()
        last = self._reported.get(key)
        if last is not None and now - last < self.window:
            return False
        if len(self._reported) > 50_000:
            self._reported.clear()
        self._reported[key] = now
        return True
