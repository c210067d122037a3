"""``dispatcher deliveries list|redeliver|recover``: the delivery log of a notification."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dispatcher.cli.common import UsageError, cli_runtime, counted, print_json, print_table
from dispatcher.vocabulary import DeliveryStatus

if TYPE_CHECKING:
    from datetime import datetime

    from dispatcher.models import Delivery


def register(commands: Any) -> None:
    group = commands.add_parser(
        "deliveries",
        help="show a notification's recent deliveries and send them again",
        description=(
            "The delivery log: every delivery of a notification with its attempts (time, "
            "status code, latency, error). Deliveries older than DISPATCHER_DELIVERY_RETENTION "
            "are pruned."
        ),
    )
    actions = group.add_subparsers(dest="deliveries_command", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="recent deliveries of a notification, newest first",
        description="Recent deliveries of the notification UUID, newest first.",
    )
    listing.add_argument("uuid", metavar="UUID", help="the notification's uuid")
    listing.add_argument("--status", choices=list(DeliveryStatus), help="only deliveries in it")
    listing.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="how many (default DISPATCHER_DELIVERY_LOG_DEFAULT_LIMIT)",
    )
    listing.add_argument(
        "--cursor", metavar="CURSOR", help="continue after a previous page (see --json)"
    )
    listing.add_argument(
        "--json", action="store_true", help="machine-readable output, attempts included"
    )
    listing.set_defaults(handler=_list)

    redeliver = actions.add_parser(
        "redeliver",
        help="send a delivery's event again, as a new delivery",
        description=(
            "Queue a new delivery (a new id, so a new webhook-id) of the event of delivery ID. "
            "It is sent even if the notification is disabled."
        ),
    )
    redeliver.add_argument("delivery_id", metavar="ID", help="a delivery id from 'list'")
    redeliver.add_argument("--json", action="store_true", help="print the new delivery as JSON")
    redeliver.set_defaults(handler=_redeliver)

    recover = actions.add_parser(
        "recover",
        help="send again the deliveries that failed or were skipped in a window of time",
        description=(
            "Queue a new delivery of the event of each delivery of the notification UUID that "
            "ended failed or skipped from --since until --until (now by default), oldest "
            "first. A delivery is recovered once: the same command again recovers nothing "
            "new. It works on a disabled notification, so its owner can catch up after "
            "fixing the receiver. The window is at most DISPATCHER_DELIVERY_RETENTION long."
        ),
    )
    recover.add_argument("uuid", metavar="UUID", help="the notification's uuid")
    recover.add_argument(
        "--since",
        required=True,
        metavar="WHEN",
        help="how long ago the window starts (30m, 2h, 7d) or an ISO-8601 time",
    )
    recover.add_argument(
        "--until", metavar="WHEN", help="how long ago it ends, or an ISO-8601 time (default now)"
    )
    recover.add_argument(
        "--json", action="store_true", help="print the count and the new deliveries' ids"
    )
    recover.set_defaults(handler=_recover)


def _row(delivery: Delivery) -> list[Any]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return [
        delivery.id,
        delivery.kind,
        delivery.status,
        len(delivery.attempts),
        last.status_code if last else None,
        f"{last.latency_ms:.0f}" if last else None,
        delivery.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        (last.error or "")[:60] if last and last.error else None,
    ]


def _list(args: argparse.Namespace) -> int:
    from dispatcher.service import delivery_log, notifications

    with cli_runtime() as runtime, runtime.sessions() as session:
        (notification,) = notifications.notifications_by_uuid(session, [args.uuid])
        page = delivery_log.list_deliveries(
            session,
            notification,
            runtime.settings,
            status=args.status,
            limit=args.limit,
            cursor=args.cursor,
        )
        views = [delivery_log.delivery_view(item) for item in page.deliveries]
        rows = [_row(item) for item in page.deliveries]
    if args.json:
        print_json({"deliveries": views, "next_cursor": page.next_cursor})
        return 0
    headers = ["id", "kind", "status", "attempts", "code", "ms", "created (utc)", "last error"]
    print_table(headers, rows)
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")
    return 0


def _redeliver(args: argparse.Namespace) -> int:
    from dispatcher.service import delivery_log

    with cli_runtime() as runtime, runtime.sessions() as session:
        original = delivery_log.find_delivery(session, args.delivery_id)
        delivery = delivery_log.redeliver(session, original, runtime.doorbell)
        view = delivery_log.delivery_view(delivery)
    if args.json:
        print_json(view)
    else:
        print(f"queued delivery {view['id']} (redelivery of {args.delivery_id})")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from dispatcher.service import delivery_log, notifications

    since, until = _window(args.since, args.until)
    with cli_runtime() as runtime, runtime.sessions() as session:
        (notification,) = notifications.notifications_by_uuid(session, [args.uuid])
        recovery = delivery_log.recover(
            session, notification, runtime.settings, runtime.doorbell, since, until
        )
    if args.json:
        print_json({"recovered": recovery.count, "delivery_ids": list(recovery.delivery_ids)})
    else:
        print(f"recovered {counted(recovery.count, 'delivery', 'deliveries')} of {args.uuid}")
    return 0


def _window(since: str, until: str | None) -> tuple[datetime, datetime]:
    """The window ``--since`` and ``--until`` name; UsageError if they name none, or one
    the service would refuse."""
    from dispatcher.config import get_settings
    from dispatcher.errors import InvalidRequestError
    from dispatcher.models import utcnow
    from dispatcher.service.delivery_log import check_window

    now = utcnow()
    start = _moment(since, "--since", now)
    end = now if until is None else _moment(until, "--until", now)
    try:
        check_window(start, end, get_settings())
    except InvalidRequestError as exc:
        raise UsageError(exc.message) from None
    return start, end


def _moment(text: str, option: str, now: datetime) -> datetime:
    """``text`` as a time: a duration is that long before ``now``, else an ISO-8601 time.
    UsageError if it is neither."""
    from datetime import timedelta

    from dispatcher.config import parse_duration
    from dispatcher.errors import InvalidRequestError, echo
    from dispatcher.service.delivery_log import parse_time

    try:
        return now - timedelta(seconds=parse_duration(text))
    except (ValueError, OverflowError):
        pass
    try:
        return parse_time(text, option)
    except InvalidRequestError:
        raise UsageError(
            f"{option}: '{echo(text)}' is neither a duration (30m, 2h, 7d) nor an ISO-8601 time"
        ) from None
