"""dispatcher: asynchronous notification delivery for container registries."""

from __future__ import annotations

__version__ = "0.1.0"
