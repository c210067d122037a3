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
from dispatcher.doorbell import Doorbell, RecordingDoorbell


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    doorbell: Doorbell = field(default_factory=RecordingDoorbell)

    def close(self) -> None:
        self.engine.dispose()


def create_runtime(settings: Settings, doorbell: Doorbell | None = None) -> Runtime:
    engine = make_engine(settings.database_url)
    runtime = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine))
    if doorbell is not None:
        runtime.doorbell = doorbell
    return runtime
