"""The metrics endpoint of a ``dispatcher worker`` process (``DISPATCHER_WORKER_METRICS_PORT``).

``dispatcher worker`` calls :func:`start_metrics_server` once, before Celery starts (and so
before any prefork child exists). It switches prometheus_client to multi-process mode on a
fresh temporary directory, so every child writes its samples there and the parent's endpoint
serves their sum, and adds the queue gauges read from the database on each scrape.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.db import make_engine, make_sessionmaker
from dispatcher.ops.metrics import MULTIPROC_ENV, CombinedCollector, QueueCollector


@dataclass
class MetricsServer:
    port: int
    directory: str
    server: WSGIServer
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def enable_multiprocess() -> str:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh temporary directory and make metric values
    created from now on (all of :mod:`dispatcher.ops.metrics` is labelled, so all of them) live
    there. Returns the directory; it is removed when the process exits."""
    directory = tempfile.mkdtemp(prefix="dispatcher-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    # prometheus_client picks its value class when first imported; pick again now.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def start_metrics_server(settings: Settings) -> MetricsServer | None:
    """Serve the worker's metrics on ``worker_metrics_host:worker_metrics_port`` from a daemon
    thread; None when no port is configured. Call before Celery forks its children."""
    if settings.worker_metrics_port is None:
        return None
    directory = enable_multiprocess()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    queue = QueueCollector(_LazySessions(settings.database_url))
    server, thread = start_http_server(
        settings.worker_metrics_port,
        addr=settings.worker_metrics_host,
        registry=CombinedCollector(registry, queue),
    )
    port = int(server.server_address[1])
    return MetricsServer(port=port, directory=directory, server=server, thread=thread)


class _LazySessions:
    """Sessions on an engine made at the first scrape, in the serving thread: no connection
    is opened before Celery forks, so no child inherits one."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._factory: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Session:
        with self._lock:
            if self._factory is None:
                self._factory = make_sessionmaker(make_engine(self._database_url))
        return self._factory()
