"""``dispatcher repos add|list|remove``: registered repositories."""

from __future__ import annotations

import argparse
from typing import Any

from dispatcher.cli.common import cli_runtime, counted, print_json, print_table


def register(commands: Any) -> None:
    group = commands.add_parser("repos", help="register, list and remove repositories")
    actions = group.add_subparsers(dest="repos_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="register a repository (namespace/name)")
    add.add_argument("repository", help="e.g. acme/web")
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list repositories with their notification counts")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)

    remove = actions.add_parser(
        "remove", help="remove a repository with its notifications and deliveries"
    )
    remove.add_argument("repository", help="e.g. acme/web")
    remove.set_defaults(handler=_remove)


def _add(args: argparse.Namespace) -> int:
    from dispatcher.service import repositories

    with cli_runtime() as runtime, runtime.sessions.begin() as session:
        repository, created = repositories.add_repository(session, args.repository)
        name = repository.full_name
    print(f"repository {name} {'added' if created else 'already registered'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from dispatcher.service import repositories

    with cli_runtime() as runtime, runtime.sessions() as session:
        rows = [
            {"repository": repo.full_name, "notifications": len(repo.notifications)}
            for repo in repositories.list_repositories(session)
        ]
    if args.json:
        print_json(rows)
    else:
        print_table(["repository", "notifications"], [list(row.values()) for row in rows])
    return 0


def _remove(args: argparse.Namespace) -> int:
    from dispatcher.service import repositories

    with cli_runtime() as runtime, runtime.sessions.begin() as session:
        count = repositories.remove_repository(session, args.repository)
    removed = counted(count, "notification", "notifications")
    print(f"repository {args.repository} removed with {removed}")
    return 0
