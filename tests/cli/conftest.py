"""The installed ``dispatcher`` command, run as users run it: one subprocess per invocation, on
one test database, from a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COMMAND = str(Path(sys.executable).parent / "dispatcher")

Result = subprocess.CompletedProcess[str]


class CLI:
    """``dispatcher`` with ``DISPATCHER_DATABASE_URL`` set to ``database_url``."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        self.database_url = database_url
        self.cwd = cwd

    def __call__(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> Result:
        """Run one command; with ``check``, a non-zero exit fails the test with its stderr."""
        result = subprocess.run(
            [COMMAND, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "DISPATCHER_DATABASE_URL": self.database_url, **(env or {})},
            timeout=60,
            cwd=self.cwd,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed: {result.stderr}")
        return result

    def packages_imported(self, *args: str) -> set[str]:
        """Run a command under ``python -X importtime`` (it must succeed); the top-level
        packages it loaded."""
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "dispatcher", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "DISPATCHER_DATABASE_URL": self.database_url},
            timeout=60,
            cwd=self.cwd,
        )
        assert result.returncode == 0, result.stderr
        return {
            line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in result.stderr.splitlines()
            if line.startswith("import time:") and not line.endswith("imported package")
        }

    def at_once(self, *commands: Sequence[str]) -> list[Result]:
        """Run commands that do not change the database side by side (the cost of a run is
        mostly starting Python); results in the order given, none checked."""
        with ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args: self(*args, check=False), commands))
