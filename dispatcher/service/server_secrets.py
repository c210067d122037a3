"""Secrets the service makes for itself when the operator configured none.

The console signs its cookies with ``DISPATCHER_CONSOLE_SECRET``; when that is unset, a random
key is generated once and kept in the ``server_secrets`` table, so the embedded default needs
no setting and every API process on the same database signs and checks with the same key.
"""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.models import ServerSecret

CONSOLE_SECRET = "console"
_GENERATED_BYTES = 48


def console_secret(sessions: sessionmaker[Session], settings: Settings) -> str:
    """The console's signing key: the configured one, else the stored (or a new) one."""
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value()
    return stored_secret(sessions, CONSOLE_SECRET)


def stored_secret(sessions: sessionmaker[Session], name: str) -> str:
    """The secret ``name`` from the database, generated and stored on first use. Two
    processes starting together agree: the loser of the insert race reads the winner's."""
    with sessions() as session:
        row = session.get(ServerSecret, name)
        if row is not None:
            return row.value
        session.add(ServerSecret(name=name, value=secrets.token_urlsafe(_GENERATED_BYTES)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
        return session.get_one(ServerSecret, name, populate_existing=True).value
