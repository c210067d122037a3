"""The leader lease, on SQLite (a file lock) and PostgreSQL (an advisory lock): one holder at
a time, and the next takes over at once when the holder lets go, dies or loses its
connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from dispatcher.worker.leader import leader_lease

HOLD_AND_WAIT = """
import sys, time
from sqlalchemy import create_engine
from dispatcher.worker.leader import leader_lease
lease = leader_lease(create_engine(sys.argv[1]), "dispatcher")
assert lease.hold()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_one_holder_at_a_time(engine: Engine) -> None:
    first, second = leader_lease(engine, "dispatcher"), leader_lease(engine, "dispatcher")
    other_queue = leader_lease(engine, "reports")
    try:
        assert first.hold()
        assert first.hold()  # kept from tick to tick
        assert not second.hold()
        assert other_queue.hold()  # the sweepers of another queue have a lease of their own
        first.release()
        assert second.hold()
        assert not first.hold()
    finally:
        for lease in (first, second, other_queue):
            lease.release()


def test_a_dead_holder_is_replaced_at_once(engine: Engine, database_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, database_url],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    successor = leader_lease(engine, "dispatcher")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert not successor.hold()
        os.killpg(holder.pid, signal.SIGKILL)  # no release, no goodbye
        holder.wait(5)
        started = time.monotonic()
        assert eventually(successor.hold)
        assert time.monotonic() - started < 2
    finally:
        successor.release()
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_holder_whose_connection_broke_knows_it_lost_the_lease(
    engine: Engine, database_url: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the SQLite lease is a file lock: it has no connection to lose")
    first, second = leader_lease(engine, "dispatcher"), leader_lease(engine, "dispatcher")
    try:
        assert first.hold()
        with engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                )
            )
            admin.commit()
        assert eventually(second.hold)  # the server dropped the lock with the session
        assert not first.hold()  # and the old holder does not go on sweeping beside it
        second.release()
        assert first.hold()  # it takes the lease again on a new connection
    finally:
        first.release()
        second.release()
