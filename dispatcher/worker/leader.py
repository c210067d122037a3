"""The leader lease: which of many processes runs the sweep, one at a time.

Every ``dispatcher worker`` process (and ``dispatcher scheduler``, and the embedded worker)
runs a sweeper, and each tick it sweeps only while it holds the lease. The lease is one the
database itself releases when its holder is gone, so another process takes over at its next
tick after a holder dies, with no expiry to wait for and no clock to agree on:

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection the
  holder keeps open. When the holder dies its connection closes and the server drops the lock;
  when the database goes away the holder's connection breaks, and after the outage whoever
  asks first holds it.
* SQLite (one host): an exclusive ``flock`` on a file beside the database; the kernel drops it
  when the holder's process ends.

A Redis lock with an expiry would work only with a Redis broker, and would hand over only
when its expiry ran out; the database is there in every deployment.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class LeaderLease(Protocol):
    def hold(self) -> bool:
        """Take the lease or keep it; True while this process holds it."""
        ...

    def release(self) -> None:
        """Let the lease go (another process may take it at once)."""
        ...


class AdvisoryLock:
    """The lease as a PostgreSQL session-level advisory lock on a connection kept open."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        # advisory locks take a signed 64-bit key
        digest = hashlib.sha256(name.encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        self._connection: Connection | None = None

    def hold(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()
                return True
            except SQLAlchemyError as exc:
                log.warning("leader lease lost with its connection: %s", type(exc).__name__)
                self._close()
        try:
            connection = self._engine.connect()
        except SQLAlchemyError:
            return False
        try:
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()
            connection.close()
            return False
        if not held:
            connection.close()
            return False
        self._connection = connection
        log.info("leader lease taken: this process sweeps")
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._connection.commit()
        except SQLAlchemyError:
            pass  # the connection is going anyway, and the lock with it
        self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # never back to the pool: the lock lives on it
                connection.close()
            except SQLAlchemyError:
                pass


class FileLock:
    """The lease as an exclusive ``flock`` on ``path`` (SQLite: one host)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def hold(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self._path, "ab")  # noqa: SIM115 (held open: the lock lives with it)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        log.info("leader lease taken: this process sweeps")
        return True

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def leader_lease(engine: Engine, queue: str) -> LeaderLease:
    """The lease of the sweepers of ``queue`` on ``engine``'s database."""
    name = f"dispatcher:sweep:{queue}"
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, name)
    database = engine.url.database
    if database and database != ":memory:":
        return FileLock(Path(f"{database}.{queue}.sweep-lock"))
    digest = hashlib.sha256(f"{engine.url}:{name}".encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"dispatcher-{os.getuid()}-{digest}.lock")


__all__ = ["AdvisoryLock", "FileLock", "LeaderLease", "leader_lease"]
