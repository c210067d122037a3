"""The collaborators one dispatcher process shares: settings, database, doorbell.

Built by :func:`create_runtime` (never at import time) and handed to ``create_app``, the CLI,
the worker and the scheduler, so tests can build one per test with their own settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.db import make_engine, make_sessionmaker
from dispatcher.pipeline.doorbell import Doorbell, SilentDoorbell


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    doorbell: Doorbell = field(default_factory=SilentDoorbell)

    def close(self) -> None:
        """Send any ring still waiting in the doorbell, then release database connections."""
        close = getattr(self.doorbell, "close", None)
        if callable(close):
            close()
        self.engine.dispose()


def create_runtime(settings: Settings, doorbell: Doorbell | None = None) -> Runtime:
    """A runtime for ``settings`` ringing ``doorbell`` (nobody by default; a process that
    hands work to workers passes :func:`dispatcher.worker.bell.doorbell_for`, the embedded
    worker installs its own)."""
    engine = make_engine(settings.database_url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        doorbell=doorbell or SilentDoorbell(),
    )
