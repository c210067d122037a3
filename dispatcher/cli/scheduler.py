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
        help="run the sweep in a process of its own (optional: every worker sweeps too)",
        description="Every DISPATCHER_SWEEP_INTERVAL seconds, ring the deliveries that are "
        "pending and due and that no live worker holds, and prune the delivery log. Every "
        "`dispatcher worker` process runs the same sweep, one at a time under a leader lease "
        "in the database, so this command is optional: run it if you want the sweep in a "
        "process of its own. It takes its turn under the same lease.",
    )
    scheduler.add_argument(
        "--once", action="store_true", help="sweep once, print how many were rung, and exit"
    )
    scheduler.set_defaults(handler=_scheduler)


def _scheduler(args: argparse.Namespace) -> int:
    from dispatcher.ops.logs import configure_logging
    from dispatcher.pipeline.sweep import sweep
    from dispatcher.worker.leader import leader_lease
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
        lease = leader_lease(runtime.engine, runtime.settings.worker_queue)
        run_sweeper(runtime, stop, lease)
    return 0
