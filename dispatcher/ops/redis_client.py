"""The one way dispatcher opens a Redis client (the ring flag, rate limits, readiness)."""

from __future__ import annotations

import redis


def connect(url: str, timeout: float) -> redis.Redis:
    """A client of the Redis at ``url`` whose calls fail after ``timeout`` seconds. A client
    made from a URL tries once (``redis.Redis()`` itself retries, backing off for seconds,
    which none of its callers may wait)."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


__all__ = ["connect"]
