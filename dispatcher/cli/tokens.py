"""``dispatcher tokens create|list|revoke``: API bearer tokens."""

from __future__ import annotations

import argparse
from typing import Any

from dispatcher.cli.common import cli_runtime, print_json, print_table
from dispatcher.errors import InvalidRequestError
from dispatcher.vocabulary import Scope


def register(commands: Any) -> None:
    group = commands.add_parser("tokens", help="create, list and revoke API tokens")
    actions = group.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="create a token and print its secret on stdout",
        description="Create a bearer token. Only its hash is stored: the secret printed on "
        "stdout is shown once. Example: dispatcher tokens create --scope repo:admin "
        "--repo acme/web --repo 'acme/*' --expires-in 30d --name ci",
    )
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=list(Scope),
        help="repo:admin (notification API) or events:write (producer endpoint); repeatable",
    )
    create.add_argument(
        "--repo",
        action="append",
        required=True,
        metavar="GRANT",
        help="repository the token covers: ns/repo, 'ns/*' or '*'; repeatable",
    )
    create.add_argument("--expires-in", metavar="DURATION", help="e.g. 3600s, 12h, 30d, 2w")
    create.add_argument("--name", help="a label shown by `tokens list`")
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int, help="the token id shown by `tokens list`")
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    from dispatcher.config import parse_duration
    from dispatcher.service import tokens

    try:
        expires_in = parse_duration(args.expires_in) if args.expires_in else None
    except ValueError as exc:
        raise InvalidRequestError(f"--expires-in: {exc}") from None
    with cli_runtime() as runtime, runtime.sessions.begin() as session:
        _token, secret = tokens.create_token(
            session, scopes=args.scope, grants=args.repo, expires_in=expires_in, name=args.name
        )
    print(secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    from dispatcher.service import tokens

    with cli_runtime() as runtime, runtime.sessions() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": token.id,
                "name": token.name,
                "scopes": token.scopes,
                "repos": token.grants,
                "created": token.created_at.isoformat(timespec="seconds"),
                "expires": token.expires_at.isoformat(timespec="seconds")
                if token.expires_at
                else None,
                "state": tokens.token_state(token),
            }
            for token in tokens.list_tokens(session)
        ]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["id", "name", "scopes", "repos", "expires", "state"],
        [
            [
                row["id"],
                row["name"],
                ",".join(row["scopes"]),
                ",".join(row["repos"]),
                row["expires"],
                row["state"],
            ]
            for row in rows
        ],
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from dispatcher.service import tokens

    with cli_runtime() as runtime, runtime.sessions.begin() as session:
        tokens.revoke_token(session, args.id)
    print(f"token {args.id} revoked")
    return 0
