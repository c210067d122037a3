"""The doorbell: how committed deliveries are announced to workers.

The database is the source of truth; a ring only says "there is due work". The worker that
answers *drains*: it claims due deliveries in batches until none is left. So ringing again
while a ring is already out is pointless, and a :class:`RingFlag` makes it free: a producer
sends a message only when it sets the flag, and the draining worker clears the flag before
its last claim. A delivery committed while the flag was set (its producer rang nobody) is
therefore seen by that last claim, and one committed after the flag was cleared rings again.
The flag expires after ``settings.ring_lease_seconds``, and the sweep rings whenever due work
waits, so a lost ring delays a delivery; it never loses one. Ring only after the transaction
that wrote the deliveries has committed.

* :class:`BrokerDoorbell` rings workers in other processes through a ``send`` it is given
  (``dispatcher.worker.bell`` gives one that sends the drain task by name through Celery);
* :class:`LocalDoorbell` wakes the embedded worker of this process;
* :class:`SilentDoorbell` rings nobody (the serving process's sweep finds the work).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from dispatcher.config import Settings
from dispatcher.ops.redis_client import connect

log = logging.getLogger(__name__)


class Doorbell(Protocol):
    def ring(self, delivery_ids: Sequence[str]) -> None:
        """Announce due work. Worker doorbells ignore the ids: the worker that answers drains
        every due delivery, and a ring while one is already out sends nothing."""
        ...

    def send(self) -> None:
        """Ring whatever the flag says: a drain asking for help or continuing, a hand-back
        come due, or the sweep finding work older than the ring that is out."""
        ...


class SilentDoorbell:
    """Rings nobody: for a process with no broker and no worker of its own (the CLI, a Python
    producer on the embedded setup). The serving process's sweep finds the work."""

    def ring(self, delivery_ids: Sequence[str]) -> None:
        return None

    def send(self) -> None:
        return None


# -- the "a ring is out" flag ------------------------------------------------------------------


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
    if settings.broker_url and settings.redis_broker:
        client = connect(settings.broker_url, settings.readiness_timeout)
        key = f"dispatcher:ring:{settings.worker_queue}"
        return RedisRingFlag(client, key, settings.ring_lease_seconds)
    return AlwaysRing()


# -- the doorbells that reach a worker ---------------------------------------------------------


class BrokerDoorbell:
    """Rings workers in other processes with ``send`` (one message on the broker), once per
    ring that is out. ``send`` raises OSError when the broker cannot be reached."""

    def __init__(self, flag: RingFlag, send: Callable[[], None]) -> None:
        self.flag = flag
        self._send = send

    def ring(self, delivery_ids: Sequence[str] = ()) -> None:
        if self.flag.acquire():
            self.send()

    def send(self) -> None:
        """Send a message whatever the flag says (a draining worker asking for help)."""
        try:
            self._send()
        except OSError as exc:
            # The rows are committed; the sweep rings again once the broker is back.
            self.flag.clear()
            log.warning(
                "doorbell: broker unreachable (%s); the sweep will ring", type(exc).__name__
            )


class LocalDoorbell:
    """Wakes the embedded worker of this process: rings are items on :attr:`rings`."""

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
