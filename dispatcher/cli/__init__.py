"""The ``dispatcher`` command. Each command group lives in its own module of this package and
registers itself in :data:`COMMAND_MODULES` order; a handler takes the parsed arguments and
returns the exit status.

Command modules import at their top only what building the parser needs; a handler imports
the rest (the ORM, the senders, FastAPI, Celery) when it runs, so ``--help`` and simple
commands start quickly."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from dispatcher.cli.common import UsageError
from dispatcher.errors import DispatcherError
from dispatcher.version import __version__

COMMAND_MODULES = (
    "serve",
    "db",
    "tokens",
    "repos",
    "notifications",
    "deliveries",
    "worker",
    "scheduler",
    "emit",
    "emails",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatcher",
        description=(
            "Notification delivery for container registries: a Quay-compatible API, "
            "Celery workers and an operator CLI. Configuration comes from DISPATCHER_* "
            "environment variables (see the README)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dispatcher {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dispatcher.cli.{name}")
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    try:
        status: int = args.handler(args)
        sys.stdout.flush()  # here, so that a closed stdout is met below, not at exit
    except BrokenPipeError:
        # The reader went away (`dispatcher … | head -1`): end quietly, with the status of a
        # command stopped by SIGPIPE, and let nothing more be written to the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except UsageError as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        return 2
    except DispatcherError as exc:
        print(f"dispatcher: {exc.message}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        for error in exc.errors():
            name = "DISPATCHER_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"dispatcher: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(f"dispatcher: database error: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
