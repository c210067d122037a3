"""``dispatcher scheduler``: the periodic sweep that rings due and orphaned deliveries."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

from dispatcher.cli.common import cli_runtime


def register(commands: Any) -> None:
    scheduler = commands.add_parser(
        "scheduler",
        help="run the sweep that rings due retries and deliveries whose worker vanished",
        description="Every DISPATCHER_SWEEP_INTERVAL seconds, ring the deliveries that are "
        "pending and due and that no live worker holds. One is enough; more are harmless.",
    )
    scheduler.add_argument(
        "--once", action="store_true", help="sweep once, print how many were rung, and exit"
    )
    scheduler.set_defaults(handler=_scheduler)


def _scheduler(args: argparse.Namespace) -> int:
    from dispatcher.ops.logs import configure_logging
    from dispatcher.pipeline.sweep import sweep
    from dispatcher.worker.sweeper import run_sweeper

    with cli_runtime() as runtime:
        if args.once:
            print(sweep(runtime.sessions, runtime.settings, runtime.doorbell))
            return 0
        configure_logging(runtime.settings)
        stop = threading.Event()

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        run_sweeper(runtime, stop)
    return 0
