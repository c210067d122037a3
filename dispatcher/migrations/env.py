"""Alembic environment. ``dispatcher db`` sets the URL (``sqlalchemy.url``); the ``alembic``
command run with the repository's alembic.ini sets none, and the URL is
``DISPATCHER_DATABASE_URL``, read as dispatcher reads it."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from dispatcher import models  # noqa: F401  (registers the tables on Base.metadata)
from dispatcher.config import get_settings
from dispatcher.db import Base

config = context.config
target_metadata = Base.metadata

# The alembic command logs as alembic.ini says; dispatcher db keeps the process's logging.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = create_engine(database_url(), poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
