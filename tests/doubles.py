"""Test doubles of dispatcher's collaborators."""

from __future__ import annotations

from collections.abc import Sequence


class RecordingDoorbell:
    """A doorbell that counts its rings and keeps the ids they named."""

    def __init__(self) -> None:
        self.rung: list[str] = []
        self.rings = 0
        self.sent = 0  # rings sent whatever the flag said

    def ring(self, delivery_ids: Sequence[str]) -> None:
        self.rings += 1
        self.rung.extend(delivery_ids)

    def send(self) -> None:
        self.rings += 1
        self.sent += 1
