"""``dispatcher notifications list|reset``: find failing notifications and re-enable them."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from dispatcher.cli.common import cli_runtime, counted, print_json, print_table

if TYPE_CHECKING:
    from dispatcher.models import Notification


def register(commands: Any) -> None:
    group = commands.add_parser(
        "notifications",
        help="list notifications across repositories and reset their failure counters",
        description=(
            "Operator view of every repository's notifications. A notification is disabled "
            "when its failure counter reaches DISPATCHER_MAX_FAILURES; reset sets the counter "
            "to 0 and enables it again."
        ),
    )
    actions = group.add_subparsers(dest="notifications_command", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="list notifications (targets shown with secrets masked)",
        description=(
            "List notifications with their repository, uuid, event, method, target, failure "
            "count and status. Webhook query strings, Slack hook paths and signing secrets "
            "are never shown."
        ),
    )
    listing.add_argument("--repo", metavar="NS/NAME", help="only this repository")
    listing.add_argument(
        "--failing", action="store_true", help="only notifications with failures counted"
    )
    listing.add_argument(
        "--disabled", action="store_true", help="only notifications disabled by failures"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)

    reset = actions.add_parser(
        "reset",
        help="set failure counters to 0 and re-enable notifications",
        description=(
            "Reset the named notifications, or with --all-disabled every disabled one "
            "(optionally of one repository). Nothing is changed if a uuid is unknown. "
            "Progress goes to stderr."
        ),
    )
    reset.add_argument("uuids", nargs="*", metavar="UUID", help="notifications to reset")
    reset.add_argument(
        "--all-disabled", action="store_true", help="reset every disabled notification"
    )
    reset.add_argument("--repo", metavar="NS/NAME", help="with --all-disabled: one repository")
    reset.set_defaults(handler=_reset, parser=reset)


def _view(notification: Notification) -> dict[str, Any]:
    from dispatcher.senders.registry import describe_target

    return {
        "repository": notification.repository.full_name,
        "uuid": notification.uuid,
        "title": notification.title,
        "event": notification.event,
        "method": notification.method,
        "target": describe_target(notification.method, notification.config),
        "number_of_failures": notification.number_of_failures,
        "status": "enabled" if notification.enabled else "disabled",
    }


def _list(args: argparse.Namespace) -> int:
    from dispatcher.service import notifications

    with cli_runtime() as runtime, runtime.sessions() as session:
        rows = [
            _view(item)
            for item in notifications.find_notifications(
                session, repository=args.repo, failing=args.failing, disabled=args.disabled
            )
        ]
    if args.json:
        print_json(rows)
        return 0
    headers = ["repo", "uuid", "event", "method", "target", "failures", "status"]
    keys = ["repository", "uuid", "event", "method", "target", "number_of_failures", "status"]
    print_table(headers, [[row[key] for key in keys] for row in rows])
    return 0


def _reset(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.all_disabled == bool(args.uuids):
        parser.error("name notification uuids or give --all-disabled (one of the two)")
    if args.repo and not args.all_disabled:
        parser.error("--repo goes with --all-disabled")
    from dispatcher.service import notifications

    with cli_runtime() as runtime, runtime.sessions() as session:
        if args.all_disabled:
            targets = notifications.find_notifications(session, repository=args.repo, disabled=True)
        else:
            targets = notifications.notifications_by_uuid(session, args.uuids)
        count = notifications.reset_many(
            session,
            targets,
            batch_size=runtime.settings.cli_progress_every,
            progress=_progress if len(targets) > runtime.settings.cli_progress_every else None,
        )
    print(f"reset {counted(count, 'notification', 'notifications')}")
    return 0


def _progress(done: int, total: int) -> None:
    print(f"reset {done}/{total}", file=sys.stderr, flush=True)
