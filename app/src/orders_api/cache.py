"""Redis cache-aside for orders, built to fail open.

Every Redis call is bounded by a short timeout. After a failure the cache is skipped for
REDIS_RETRY_SECONDS (a small circuit breaker, so a dead Redis does not add its timeout to every
request), then tried again: when Redis comes back it is used again with no restart.

Invalidations that could not reach Redis are remembered and replayed before the cache is read
again, so an order updated during a Redis outage is not served stale once Redis returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("orders_api.cache")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    skipped: int = 0
    sets: int = 0
    invalidations: int = 0


class CircuitBreaker:
    """Open for `cooldown` seconds after a failure; closed again by the next success."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def failure(self) -> None:
        self._open_until = time.monotonic() + self.cooldown

    def success(self) -> None:
        self._open_until = 0.0


class OrderCache:
    def __init__(
        self,
        url: str,
        prefix: str,
        ttl: int,
        timeout: float,
        retry_seconds: float,
        ca_file: str | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # One immediate retry replaces a pooled connection that a Redis restart closed.
            "retry": Retry(NoBackoff(), 1),
            "max_connections": 50,
        }
        if url.startswith("rediss://"):
            kwargs["ssl_cert_reqs"] = "required"
            if ca_file:
                kwargs["ssl_ca_certs"] = ca_file
        self._client = redis.Redis.from_url(url, **kwargs)
        self._prefix = prefix
        self._ttl = ttl
        self._timeout = timeout
        self.breaker = CircuitBreaker(retry_seconds)
        self.stats = CacheStats()
        self._pending_invalidations: set[str] = set()
        self._degraded = False

    def key(self, order_id: int) -> str:
        return f"{self._prefix}order:{order_id}"

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            result = await asyncio.wait_for(coro, self._timeout)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self.stats.errors += 1
            if not self._degraded:
                log.warning("redis %s failed, bypassing the cache for %gs: %s", what,
                            self.breaker.cooldown, exc or type(exc).__name__)
            self._degraded = True
            self.breaker.failure()
            raise CacheUnavailable(str(exc) or type(exc).__name__) from exc
        if self._degraded:
            log.info("redis is reachable again, cache in use")
            self._degraded = False
        self.breaker.success()
        return result

    async def _available(self) -> bool:
        """False while the breaker is open; replays pending invalidations first when it closes."""
        if self.breaker.is_open:
            self.stats.skipped += 1
            return False
        if self._pending_invalidations:
            keys = list(self._pending_invalidations)
            try:
                await self._call("replay invalidations", self._client.delete(*keys))
            except CacheUnavailable:
                return False
            self._pending_invalidations.difference_update(keys)
            log.info("replayed %d cache invalidations", len(keys))
        return True

    async def get(self, order_id: int) -> bytes | None:
        """The cached JSON of an order, or None on a miss or when Redis is unavailable."""
        if not await self._available():
            self.stats.misses += 1
            return None
        try:
            value = await self._call("get", self._client.get(self.key(order_id)))
        except CacheUnavailable:
            self.stats.misses += 1
            return None
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    async def get_when_database_down(self, order_id: int) -> bytes | None:
        """The cached JSON of an order for a read the database cannot answer: Redis is asked even while the breaker
        is open (a moment of Redis slowness opened it; a 503 is worse than one more bounded call), unless an
        invalidation of this order is still pending (the copy may be stale). None when there is none to give."""
        key = self.key(order_id)
        if key in self._pending_invalidations:
            return None
        try:
            value = await self._call("get", self._client.get(key))
        except CacheUnavailable:
            return None
        if value is not None:
            self.stats.hits += 1
        return value

    async def set(self, order_id: int, body: bytes) -> None:
        if not await self._available():
            return
        try:
            await self._call("set", self._client.set(self.key(order_id), body, ex=self._ttl))
            self.stats.sets += 1
        except CacheUnavailable:
            pass

    async def invalidate(self, order_id: int) -> None:
        key = self.key(order_id)
        self.stats.invalidations += 1
        if not self.breaker.is_open:
            try:
                await self._call("delete", self._client.delete(key))
                return
            except CacheUnavailable:
                pass
        self._pending_invalidations.add(key)

    async def ping(self, timeout: float) -> None:
        """Readiness check: always tries Redis (ignores the breaker) and closes the breaker on success."""
        await asyncio.wait_for(self._call("ping", self._client.ping()), timeout)

    async def close(self) -> None:
        await self._client.aclose()


class CacheUnavailable(Exception):
    pass
