"""Instance identity from the EC2 instance metadata service (IMDSv2), with the hostname as fallback."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.request
from dataclasses import dataclass

log = logging.getLogger("orders_api.metadata")

_TOKEN_TTL_SECONDS = "300"
# After a failed lookup (not on EC2, IMDS hop limit, ...) the hostname is used for this long.
_RETRY_AFTER_FAILURE_SECONDS = 60.0
# learn(): the background lookup retries after 1, 2, 4 ... s, at most this far apart. A busy first
# boot can leave the metadata service slower than the timeout; the id must still arrive.
_LEARN_BACKOFF_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Identity:
    instance_id: str
    source: str  # "imds" or "hostname"


def fetch_instance_id(base_url: str, timeout: float) -> str:
    """IMDSv2: PUT a session token, then GET the instance id with it. Never goes through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    token_request = urllib.request.Request(
        f"{base_url}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": _TOKEN_TTL_SECONDS},
    )
    with opener.open(token_request, timeout=timeout) as response:
        token = response.read().decode().strip()
    id_request = urllib.request.Request(
        f"{base_url}/latest/meta-data/instance-id",
        headers={"X-aws-ec2-metadata-token": token},
    )
    with opener.open(id_request, timeout=timeout) as response:
        instance_id = response.read().decode().strip()
    if not instance_id:
        raise ValueError("empty instance-id")
    return instance_id


class InstanceIdentity:
    """Looks the instance id up once and keeps it; falls back to the hostname (retried later)."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._cached: Identity | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def known(self) -> Identity | None:
        """The identity found so far, without a lookup (None before the first one)."""
        return self._cached

    async def get(self) -> Identity:
        if self._cached and (self._cached.source == "imds" or time.monotonic() < self._retry_at):
            return self._cached
        async with self._lock:
            if self._cached and (self._cached.source == "imds" or time.monotonic() < self._retry_at):
                return self._cached
            self._cached = await self._lookup()
            self._retry_at = time.monotonic() + _RETRY_AFTER_FAILURE_SECONDS
            return self._cached

    async def learn(self) -> Identity:
        """Look up until IMDS answers (backing off up to 30 s), so X-Served-By gets the instance id
        without waiting for a /version call. Runs as the worker's background task; on a host with
        no metadata service it keeps the hostname and asks again every 30 s."""
        delay = 1.0
        identity = await self.get()
        while identity.source != "imds" and self._base_url:
            await asyncio.sleep(delay)
            delay = min(2 * delay, _LEARN_BACKOFF_MAX_SECONDS)
            async with self._lock:
                if self._cached is None or self._cached.source != "imds":
                    self._cached = await self._lookup(quiet=True)
                    self._retry_at = time.monotonic() + _RETRY_AFTER_FAILURE_SECONDS
                identity = self._cached
        if delay > 1.0:
            log.info("instance metadata answered: %s", identity.instance_id)
        return identity

    async def _lookup(self, quiet: bool = False) -> Identity:
        if self._base_url:
            try:
                instance_id = await asyncio.wait_for(
                    asyncio.to_thread(fetch_instance_id, self._base_url, self._timeout),
                    # two requests, each bounded by the timeout
                    2 * self._timeout + 0.5,
                )
                return Identity(instance_id, "imds")
            except Exception as exc:
                if not quiet:
                    log.info("instance metadata unavailable, using the hostname: %s",
                             exc or type(exc).__name__)
        return Identity(socket.gethostname(), "hostname")
