"""``dispatcher db upgrade``: apply the schema migrations."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    db = commands.add_parser("db", help="manage the database schema")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "upgrade",
        help="apply the migrations up to the newest schema (DISPATCHER_DATABASE_URL)",
        description="Create or upgrade the database at DISPATCHER_DATABASE_URL to the newest "
        "schema. Safe to run repeatedly.",
    )
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(handler=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from dispatcher.config import get_settings
    from dispatcher.db import upgrade
    from dispatcher.logs import scrub

    settings = get_settings()
    upgrade(settings.database_url, args.revision)
    print(f"database at {scrub(settings.database_url)} is at revision {args.revision}")
    return 0
