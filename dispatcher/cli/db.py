"""``dispatcher db``: the schema migrations, as the ``alembic`` command runs them from a checkout
(the repository's alembic.ini names the same migrations and the same database setting)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dispatcher.cli.common import UsageError


def register(commands: Any) -> None:
    db = commands.add_parser(
        "db",
        help="manage the database schema",
        description="Alembic migrations of the database at DISPATCHER_DATABASE_URL.",
    )
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "upgrade",
        help="apply the migrations up to the newest schema",
        description="Create or upgrade the database at DISPATCHER_DATABASE_URL to the newest "
        "schema. Safe to run repeatedly.",
    )
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(handler=_upgrade)
    down = actions.add_parser(
        "downgrade",
        help="revert migrations",
        description="Revert the database at DISPATCHER_DATABASE_URL to an older revision; "
        "what the reverted migrations stored is dropped.",
    )
    down.add_argument("revision", help="target revision: an id, -1 for one step, base for all")
    down.set_defaults(handler=_downgrade)
    history = actions.add_parser("history", help="list the migrations, newest first")
    history.set_defaults(handler=_show)
    current = actions.add_parser("current", help="print the database's revision")
    current.set_defaults(handler=_show)


def _upgrade(args: argparse.Namespace) -> int:
    from dispatcher.db import upgrade

    return _migrate(upgrade, args.revision)


def _downgrade(args: argparse.Namespace) -> int:
    from dispatcher.db import downgrade

    return _migrate(downgrade, args.revision)


def _migrate(move: Callable[[str, str], None], revision: str) -> int:
    from dispatcher.config import get_settings
    from dispatcher.ops.logs import scrub

    settings = get_settings()
    with _revision_errors():
        move(settings.database_url, revision)
    print(f"database at {scrub(settings.database_url)} is at revision {revision}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from alembic import command

    from dispatcher.config import get_settings
    from dispatcher.db import alembic_config

    show = command.history if args.db_command == "history" else command.current
    show(alembic_config(get_settings().database_url))
    return 0


@contextmanager
def _revision_errors() -> Iterator[None]:
    """Alembic's refusal of a revision (unknown, or past the base) as a usage error."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None
