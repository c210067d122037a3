"""``dispatcher emit NS/REPO EVENT [--data JSON]``: report an event from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dispatcher.cli.common import cli_runtime, counted, print_json
from dispatcher.errors import InvalidRequestError
from dispatcher.events import EVENT_NAMES


def register(commands: Any) -> None:
    emit = commands.add_parser(
        "emit",
        help="report a repository event; its notifications are delivered",
        description="Store an event for a repository (registered if new) and queue one "
        "delivery per enabled notification whose filter matches. Prints the event id and the "
        f"number of deliveries. Events: {', '.join(EVENT_NAMES)}.",
    )
    emit.add_argument("repository", metavar="NS/REPO")
    emit.add_argument("event", metavar="EVENT")
    emit.add_argument(
        "--data",
        default="{}",
        help='event fields as a JSON object, e.g. \'{"updated_tags": ["v1"]}\'',
    )
    emit.add_argument("--performer", default=None, help="who caused it, as a JSON object")
    emit.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="retry-safe: the same key again within DISPATCHER_IDEMPOTENCY_WINDOW stores "
        "nothing and prints the first report's event",
    )
    emit.add_argument("--json", action="store_true", help="print JSON")
    emit.set_defaults(handler=_emit)


def _object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidRequestError(f"{option} is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{option} must be a JSON object")
    return value


def _emit(args: argparse.Namespace) -> int:
    from dispatcher.service.emit import emit

    data = _object(args.data, "--data") or {}
    performer = _object(args.performer, "--performer")
    with cli_runtime() as runtime:
        result = emit(
            runtime.sessions,
            runtime.settings,
            runtime.doorbell,
            args.repository,
            args.event,
            data,
            performer,
            idempotency_key=args.idempotency_key,
        )
    if args.json:
        print_json(
            {
                "event_id": result.event_id,
                "deliveries": result.deliveries,
                "replayed": result.replayed,
            }
        )
    elif result.replayed:
        queued = counted(result.deliveries, "delivery", "deliveries")
        print(f"event {result.event_id}: reported before with this key ({queued}); nothing new")
    else:
        queued = counted(result.deliveries, "delivery", "deliveries")
        print(f"event {result.event_id}: {queued} queued")
    return 0
