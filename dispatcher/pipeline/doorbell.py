"""The doorbell: how committed deliveries are announced to workers.

The database is the source of truth; ringing only says "these delivery ids are due". A lost
ring delays a delivery until the scheduler's sweep rings again, it never loses one. Ring only
after the transaction that wrote the deliveries has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Doorbell(Protocol):
    def ring(self, delivery_ids: Sequence[str]) -> None:
        """Announce due work. Worker doorbells ignore the ids: the worker that answers drains
        every due delivery, and a ring while one is already out sends nothing."""
        ...


class SilentDoorbell:
    """Rings nobody: for a process with no broker and no worker of its own (the CLI, a Python
    producer on the embedded setup). The serving process's sweep finds the work."""

    def ring(self, delivery_ids: Sequence[str]) -> None:
        return None


class RecordingDoorbell:
    """Counts its rings and keeps the ids they named; for tests."""

    def __init__(self) -> None:
        self.rung: list[str] = []
        self.rings = 0

    def ring(self, delivery_ids: Sequence[str]) -> None:
        self.rings += 1
        self.rung.extend(delivery_ids)
