"""Engines, sessions and migrations. Nothing connects at import time.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout, so the
API threads, the in-process worker and the scheduler can share one file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Alembic's package-resource form: the migrations are found through importlib.resources
# wherever dispatcher is installed. The repository's alembic.ini names the same location.
MIGRATIONS = "dispatcher:migrations"
# The newest migration; a test checks it against the migration scripts.
HEAD_REVISION = "0007"


class Base(DeclarativeBase):
    """Declarative base of every ORM model."""


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """An engine for ``database_url`` with the pragmas and pool settings dispatcher relies on.

    Statement parameters never appear in errors (they hold callers' data and token hashes), and
    a stored JSON value the parser cannot follow reads as ``{}`` instead of failing the query
    that reads it (values written before dispatcher bounded nesting)."""
    common: dict[str, Any] = {"hide_parameters": True, "json_deserializer": load_stored_json}
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **common,
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {
        **common,
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 20,
        # An unreachable host must fail a request (503) quickly, not hang it.
        "connect_args": {"connect_timeout": 5},
    }
    options.update(kwargs)
    return create_engine(database_url, **options)


def load_stored_json(text: str | bytes) -> Any:
    """A JSON column's value; ``{}`` (and a warning) for one nested beyond what the parser can
    follow, so that one such row cannot make every query that reads it fail."""
    try:
        return json.loads(text)
    except RecursionError:
        logging.getLogger(__name__).warning("a stored JSON value is nested too deeply to read")
        return {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(database_url: str) -> Any:
    """The Alembic configuration ``dispatcher db`` runs with: alembic.ini's, on ``database_url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (the newest by default).

    Raises alembic's CommandError for a revision that does not exist."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Revert the migrations down to ``revision`` (``-1`` one step, ``base`` all of them).

    Raises alembic's CommandError for a revision that does not exist."""
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def ensure_schema(engine: Engine, database_url: str) -> None:
    """Upgrade to the newest schema unless the database already has it.

    The check is one query, so short-lived commands skip loading the migration machinery."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        current = None
    if current != HEAD_REVISION:
        upgrade(database_url)


def is_connection_error(exc: BaseException) -> bool:
    """True for the errors that mean "the database cannot be reached", not "bad query"."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def request_session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for one request (a dependency's generator), closed at its end. When the
    database dropped the connection, closing (which rolls back) fails too, after the answer
    (a 503) has started: nothing is left to undo, so that failure is not raised again, which
    would only make the server reset the client."""
    session = sessions()
    try:
        yield session
    finally:
        try:
            session.close()
        except DBAPIError as exc:
            if not is_connection_error(exc):
                raise
            session.invalidate()  # close the dead connection itself, not just forget it
