"""Pacing deliveries by their rate limits (see :mod:`dispatcher.senders.ratelimit`): the
generic cell rate algorithm (GCRA), with no burst, and the sender pool's use of it.

A bucket remembers one time, when its next message may go (the *theoretical arrival time*).
:meth:`RateLimiter.acquire` answers 0.0 when that time has come, and moves it ``1 / rate``
seconds past now: the caller sends at once. Otherwise it answers the seconds left and changes
nothing: the caller asks again then. So messages of a bucket are at least ``1 / rate`` apart,
however many callers ask, and a bucket idle for that long costs no memory.

* :class:`LocalRateLimiter` keeps the buckets in this process (the embedded worker; workers on
  a broker other than Redis, each pacing on its own);
* :class:`RedisRateLimiter` keeps them in Redis, one key per bucket set by one Lua script on
  Redis's own clock, so every worker on the broker shares them whatever their clocks say. When
  Redis cannot answer within ``settings.rate_limit_timeout`` it fails open: it paces in this
  process (logging a warning) and tries Redis again after :data:`REDIS_RETRY_AFTER` seconds.

:func:`limiter_for` builds the one a worker's settings call for; a :class:`Pacer` is what
the sender pool asks about a job.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Protocol

import redis

from dispatcher.config import Settings
from dispatcher.ops.redis_client import connect
from dispatcher.pipeline.claim import Job
from dispatcher.senders.ratelimit import RateLimit
from dispatcher.senders.registry import rate_limit

log = logging.getLogger(__name__)

# Seconds a worker paces in-process after Redis failed to answer before asking it again.
REDIS_RETRY_AFTER = 5.0
KEY_PREFIX = "dispatcher:rate:"
# The local limiter forgets buckets whose time has passed once it holds this many.
PRUNE_AT = 10_000

# KEYS[1]: the bucket; ARGV[1]: microseconds between two messages. Returns 0 (go: the next
# message may go one interval from now) or the microseconds until the bucket's time comes.
# Times are microseconds on Redis's clock (below 2^53: exact in Lua's doubles).
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local due = tonumber(redis.call('GET', KEYS[1]))
if due and due > now then
  return due - now
end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', now + interval),
           'PX', math.ceil(interval / 1000) + 1)
return 0
"""


class RateLimiter(Protocol):
    def acquire(self, key: str, rate: float) -> float:
        """0.0 when a message of bucket ``key`` may go now (its slot is taken), else the
        seconds until one may (nothing is taken). ``rate`` is messages per second, > 0."""
        ...

    def close(self) -> None:
        """Let go of any connection held."""
        ...


class LocalRateLimiter:
    """The buckets of this process, on ``clock`` (monotonic seconds). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}

    def __len__(self) -> int:
        """How many buckets are remembered."""
        return len(self._due)

    def acquire(self, key: str, rate: float) -> float:
        with self._lock:
            now = self._clock()
            due = self._due.get(key, now)
            if due > now:
                return due - now
            self._due[key] = now + 1.0 / rate
            if len(self._due) >= PRUNE_AT:
                self._due = {k: at for k, at in self._due.items() if at > now}
            return 0.0

    def close(self) -> None:
        return None


class RedisRateLimiter:
    """The buckets in Redis (see the module docstring); ``fallback`` paces while Redis cannot
    be reached. Called by one thread at a time (the sender pool's loop)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        fallback: LocalRateLimiter | None = None,
        retry_after: float = REDIS_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._script = client.register_script(_GCRA)
        self._clock = clock
        self._fallback = fallback if fallback is not None else LocalRateLimiter(clock)
        self._retry_after = retry_after
        self._away_until: float | None = None  # Redis failed: pace locally until then

    @property
    def shared(self) -> bool:
        """False while pacing in this process because Redis failed."""
        return self._away_until is None

    def acquire(self, key: str, rate: float) -> float:
        if self._away_until is not None and self._clock() < self._away_until:
            return self._fallback.acquire(key, rate)
        interval = max(math.ceil(1_000_000 / rate), 1)
        try:
            wait = self._script(keys=[KEY_PREFIX + key], args=[interval])
        except redis.RedisError as exc:
            if self._away_until is None:
                log.warning(
                    "rate limits: Redis did not answer (%s); pacing within this worker until "
                    "it does",
                    type(exc).__name__,
                )
            self._away_until = self._clock() + self._retry_after
            return self._fallback.acquire(key, rate)
        if self._away_until is not None:
            log.info("rate limits: Redis answers again; pacing is shared by the workers")
            self._away_until = None
        return int(wait) / 1_000_000

    def close(self) -> None:
        self._client.close()


class Pacer:
    """The rate limits of a sender pool's jobs: which are paced (those of ``methods`` whose
    notification, method or settings name a rate), whether a paced lane keeps one more, and
    whether the next may go now (asking ``limiter``)."""

    def __init__(self, settings: Settings, methods: Collection[str], limiter: RateLimiter):
        self._settings = settings
        self._methods = frozenset(methods)
        self._limiter = limiter

    def limit_of(self, job: Job) -> RateLimit | None:
        if job.method not in self._methods:
            return None
        return rate_limit(job.method, job.config, self._settings)

    def keeps(self, job: Job, limit: RateLimit, ahead: int, now: datetime) -> bool:
        """True when the budget can send ``job`` after the ``ahead`` jobs before it while its
        lease still allows a send: the rest would be handed back by then anyway."""
        usable = (job.lease_until - now).total_seconds() - self._settings.http_timeout - 1.0
        return ahead == 0 or ahead / limit.rate <= usable

    def wait(self, job: Job) -> float:
        """0.0 when ``job`` may be sent now (a paced one has taken its slot), else the seconds
        until its budget allows it."""
        limit = self.limit_of(job)
        return 0.0 if limit is None else self._limiter.acquire(limit.bucket, limit.rate)

    def close(self) -> None:
        self._limiter.close()


def limiter_for(settings: Settings) -> RateLimiter:
    """A :class:`RedisRateLimiter` on the broker when it is Redis (its calls time out after
    ``settings.rate_limit_timeout``: the worker's loop waits for them), a
    :class:`LocalRateLimiter` otherwise."""
    if settings.broker_url and settings.redis_broker:
        return RedisRateLimiter(connect(settings.broker_url, settings.rate_limit_timeout))
    return LocalRateLimiter()


__all__ = [
    "LocalRateLimiter",
    "Pacer",
    "RateLimiter",
    "RedisRateLimiter",
    "limiter_for",
]
