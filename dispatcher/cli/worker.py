"""``dispatcher worker``: a Celery worker process delivering notifications."""

from __future__ import annotations

import argparse
from typing import Any

from dispatcher.errors import InvalidRequestError

POOLS = ("solo", "threads", "prefork")


def register(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="run a delivery worker (needs DISPATCHER_BROKER_URL)",
        description="Run a Celery worker that claims due deliveries when rung and sends up to "
        "DISPATCHER_WORKER_SEND_CONCURRENCY of them at once on one event loop, sharing one "
        "pooled HTTP transport. One solo process per CPU core is the usual shape; --pool "
        "prefork forks --concurrency children instead. Arguments after `--` go to Celery "
        "unchanged.",
    )
    worker.add_argument(
        "--concurrency", type=int, default=None, help="Celery processes/threads (prefork, threads)"
    )
    worker.add_argument("--pool", choices=POOLS, default="solo", help="Celery pool (default solo)")
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="-- extra Celery arguments")
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    from dispatcher.config import get_settings
    from dispatcher.db import upgrade
    from dispatcher.ops.logs import configure_logging
    from dispatcher.ops.metrics import start_metrics_server
    from dispatcher.worker.app import worker_app

    settings = get_settings()
    if not settings.broker_url:
        raise InvalidRequestError(
            "dispatcher worker needs DISPATCHER_BROKER_URL (e.g. redis://localhost:6379/0); "
            "without a broker, `dispatcher serve` delivers in-process"
        )
    configure_logging(settings)
    upgrade(settings.database_url)
    # Before Celery forks any child, so prefork children share the metrics directory.
    start_metrics_server(settings)
    app = worker_app(settings)
    # The banner is a picture, not a log line; --quiet is an option of celery, not of worker.
    argv = ["--quiet"] if settings.log_format == "json" else []
    argv += ["worker", f"--pool={args.pool}", f"--queues={settings.worker_queue}"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    argv.append(f"--loglevel={settings.log_level}")
    if args.concurrency:
        argv.append(f"--concurrency={args.concurrency}")
    extra = list(args.celery_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    app.worker_main(argv + extra)
    return 0
