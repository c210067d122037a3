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
    """A runtime for ``settings``. Without an explicit ``doorbell``: with a broker configured,
    rings go to the Celery workers (:class:`~dispatcher.worker.doorbells.CeleryDoorbell`);
    embedded, to nobody until :func:`~dispatcher.worker.embedded.start_embedded` installs its
    own, and the sweep rings whatever was written before."""
    engine = make_engine(settings.database_url)
    runtime = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine))
    if doorbell is not None:
        runtime.doorbell = doorbell
    elif settings.broker_url:
        from dispatcher.worker.app import create_celery

        runtime.doorbell = create_celery(settings).dispatcher_doorbell
    return runtime
