"""Doorbells that reach workers: through the broker, or to a worker in this process.

A ring says "there is due work"; it carries no ids. The worker that answers *drains*: it
claims due deliveries in batches until none is left (see
:meth:`~dispatcher.worker.context.WorkerContext.drain`). So ringing again while a ring is
already out is pointless, and a :class:`RingFlag` makes it free: a producer sends a message
only when it sets the flag, and the draining worker clears the flag before its last claim.
A delivery committed while the flag was set (its producer rang nobody) is therefore seen by
that last claim, and one committed after the flag was cleared rings again.

The flag expires after ``settings.ring_lease_seconds``, so a lost message delays work by at
most that long (the scheduler's sweep rings whenever due work waits).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import redis
from kombu.exceptions import OperationalError

from dispatcher.config import Settings

log = logging.getLogger(__name__)

TASK_NAME = "dispatcher.drain"


class RingFlag(Protocol):
    """Shared "a ring is out" flag between producers and draining workers."""

    def acquire(self) -> bool:
        """Set the flag; True when it was not set (the caller should ring)."""
        ...

    def clear(self) -> None:
        """Unset the flag: the next producer rings again."""
        ...


class AlwaysRing:
    """No shared flag (a broker other than Redis): every ring sends a message."""

    def acquire(self) -> bool:
        return True

    def clear(self) -> None:
        return None


class RedisRingFlag:
    """The flag as one Redis key set with NX and an expiry of ``ring_lease_seconds``.

    If Redis cannot be reached the flag errs on the side of ringing."""

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self._client = client
        self._key = key
        self._ttl_ms = max(int(ttl * 1000), 1)

    def acquire(self) -> bool:
        try:
            return bool(self._client.set(self._key, b"1", nx=True, px=self._ttl_ms))
        except redis.RedisError:
            return True

    def clear(self) -> None:
        try:
            self._client.delete(self._key)
        except redis.RedisError as exc:
            log.warning("doorbell: could not clear the ring flag: %s", type(exc).__name__)


class LocalRingFlag:
    """The flag within one process (the embedded worker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False

    def acquire(self) -> bool:
        with self._lock:
            was_set, self._set = self._set, True
            return not was_set

    def clear(self) -> None:
        with self._lock:
            self._set = False


def ring_flag(settings: Settings) -> RingFlag:
    """A Redis flag when the broker is Redis (the key is named after the worker queue)."""
    url = settings.broker_url or ""
    if url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(
            url,
            socket_timeout=settings.readiness_timeout,
            socket_connect_timeout=settings.readiness_timeout,
        )
        key = f"dispatcher:ring:{settings.worker_queue}"
        return RedisRingFlag(client, key, settings.ring_lease_seconds)
    return AlwaysRing()


class CeleryDoorbell:
    """Rings ``dispatcher.drain`` through ``celery_app``'s broker, once per ring that is out."""

    def __init__(self, celery_app: Any, settings: Settings, flag: RingFlag | None = None) -> None:
        self._app = celery_app
        self.flag = flag if flag is not None else ring_flag(settings)

    def ring(self, delivery_ids: Sequence[str] = ()) -> None:
        if self.flag.acquire():
            self.send()

    def send(self) -> None:
        """Send a message whatever the flag says (a draining worker asking for help)."""
        try:
            self._app.send_task(TASK_NAME)
        except (OperationalError, OSError) as exc:
            # The rows are committed; the sweep rings again once the broker is back.
            self.flag.clear()
            log.warning(
                "doorbell: broker unreachable (%s); the sweep will ring", type(exc).__name__
            )

    def close(self) -> None:
        return None


class LocalDoorbell:
    """Wakes the embedded worker thread of this process."""

    def __init__(self) -> None:
        self.flag = LocalRingFlag()
        self.rings: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def ring(self, delivery_ids: Sequence[str] = ()) -> None:
        if self.flag.acquire():
            self.rings.put(True)

    def send(self) -> None:
        self.rings.put(True)

    def close(self) -> None:
        """Tell the worker thread to stop."""
        self.rings.put(False)
