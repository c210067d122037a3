"""Helpers shared by the command modules: the runtime, output as a table or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.runtime import Runtime


class UsageError(Exception):
    """A mistake in the command line: :func:`dispatcher.cli.main` prints the message as one
    line and exits with status 2, as argparse does for its own."""


@contextmanager
def cli_runtime() -> Iterator[Runtime]:
    """A runtime for one command, on a database upgraded to the newest schema."""
    from dispatcher.config import get_settings
    from dispatcher.db import ensure_schema
    from dispatcher.runtime import create_runtime
    from dispatcher.worker.bell import doorbell_for

    settings = get_settings()
    runtime = create_runtime(settings, doorbell_for(settings))
    ensure_schema(runtime.engine, settings.database_url)
    try:
        yield runtime
    finally:
        runtime.close()


def counted(count: int, singular: str, plural: str) -> str:
    """``1 delivery``, ``2 deliveries``, ``0 deliveries``."""
    return f"{count} {singular if count == 1 else plural}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned columns on stdout; an empty result prints the headers alone."""
    cells = [[str(value) if value is not None else "-" for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    line = "  ".join(
        header.upper().ljust(width) for header, width in zip(headers, widths, strict=True)
    )
    print(line.rstrip())
    for row in cells:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
