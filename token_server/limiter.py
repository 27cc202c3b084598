"""The per-client budget of token requests, with the `limits` library.

A moving window of RATE_LIMIT_PER_MINUTE requests per client key (an IPv4 address or an IPv6 /64).
With REDIS_URL set, every token server replica counts in the same Redis, so the budget holds
behind a load balancer; without it, each process counts in its own memory. When Redis cannot be
reached the limit falls back to memory (logged once per outage) and Redis is tried again after
`retry_after` seconds: tokens keep being issued, each replica enforcing its own budget meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

__all__ = ["TokenRateLimit"]

logger = logging.getLogger(__name__)

_NAMESPACE = "avatar-token"
# A Redis that does not answer within this is treated as down (loopback or LAN: milliseconds).
_REDIS_TIMEOUT_SECONDS = 0.5


class TokenRateLimit:
    def __init__(
        self,
        per_minute: int,
        *,
        redis_url: str | None = None,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self._item = RateLimitItemPerMinute(per_minute)
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        if redis_url:
            # `limits` names its async Redis schemes async+redis:// and async+rediss://.
            storage: Storage = RedisStorage(f"async+{redis_url}", wrap_exceptions=True)
            self._redis = MovingWindowRateLimiter(storage)
        self._retry_after = retry_after
        self._clock = clock
        self._redis_down_since: float | None = None

    @property
    def shared(self) -> bool:
        """True while the budget is counted in Redis (shared by every replica)."""
        return self._redis is not None and self._redis_down_since is None

    async def acquire(self, key: str) -> float:
        """Count one request of `key`: 0.0 when allowed, else the seconds until it would be."""
        if self._redis is not None and self._redis_usable():
            try:
                async with asyncio.timeout(_REDIS_TIMEOUT_SECONDS):
                    wait = await self._take(self._redis, key)
            except Exception as exc:  # any storage failure: count in memory instead
                self._redis_failed(exc)
            else:
                if self._redis_down_since is not None:
                    logger.info("rate limit: Redis is back; the budget is shared again")
                    self._redis_down_since = None
                return wait
        return await self._take(self._memory, key)

    @staticmethod
    def retry_after_header(wait: float) -> str:
        return str(max(1, math.ceil(wait)))

    async def _take(self, limiter: MovingWindowRateLimiter, key: str) -> float:
        if await limiter.hit(self._item, _NAMESPACE, key):
            return 0.0
        stats = await limiter.get_window_stats(self._item, _NAMESPACE, key)
        return max(0.0, stats.reset_time - time.time())

    def _redis_usable(self) -> bool:
        down = self._redis_down_since
        return down is None or self._clock() - down >= self._retry_after

    def _redis_failed(self, exc: BaseException) -> None:
        first = self._redis_down_since is None
        self._redis_down_since = self._clock()
        if first:
            # Once per outage; the exception's text never holds the URL's password.
            logger.warning(
                "rate limit: Redis unreachable (%s); counting in this process's memory until "
                "it is back",
                type(exc).__name__,
            )
