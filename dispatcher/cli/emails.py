"""``dispatcher emails authorize NS/NAME ADDRESS``: confirm an address without the e-mail."""

from __future__ import annotations

import argparse
from typing import Any

from dispatcher.cli.common import cli_runtime


def register(commands: Any) -> None:
    group = commands.add_parser(
        "emails", help="addresses authorized to receive a repository's e-mail notifications"
    )
    actions = group.add_subparsers(dest="emails_command", metavar="ACTION", required=True)

    authorize = actions.add_parser(
        "authorize",
        help="authorize an address for a repository's e-mail notifications, no e-mail sent",
        description=(
            "Mark ADDRESS confirmed for the registered repository NS/NAME, as if its owner had "
            "followed the confirmation link; e-mail notifications to it can then be created."
        ),
    )
    authorize.add_argument("repository", help="e.g. acme/web")
    authorize.add_argument("address", help="the exact address, e.g. ops@example.com")
    authorize.set_defaults(handler=_authorize)


def _authorize(args: argparse.Namespace) -> int:
    from dispatcher.service import authorized_emails, repositories

    with cli_runtime() as runtime, runtime.sessions.begin() as session:
        namespace, name = repositories.parse_repository_name(args.repository)
        repository = repositories.get_repository(session, namespace, name)
        changed = authorized_emails.authorize(session, repository, args.address, runtime.settings)
        full_name = repository.full_name
    state = "authorized" if changed else "already authorized"
    print(f"{args.address} {state} for {full_name}")
    return 0
