"""Prometheus metrics. The objects live here; API and worker code only call them.

Every metric has labels, so its values are made on first ``.labels(...)``; that lets
``dispatcher worker`` switch prometheus_client to multi-process mode after this module was
imported (see :func:`start_metrics_server`) and prefork children still aggregate.

Queue depth and the age of the oldest due pending delivery are not kept in any process: the
:class:`QueueCollector` reads them from the database on each scrape, so every API and worker
endpoint reports the same numbers.

A ``dispatcher worker`` process serves its metrics (``DISPATCHER_WORKER_METRICS_PORT``) with
:func:`start_metrics_server`, called once before Celery starts (and so before any prefork
child exists): it switches prometheus_client to multi-process mode on a fresh temporary
directory, so every child writes its samples there and the parent's endpoint serves their sum,
with the queue gauges read from the database on each scrape.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.db import make_engine, make_sessionmaker
from dispatcher.models import Delivery, Notification, utcnow
from dispatcher.vocabulary import DeliveryStatus

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "dispatcher_http_requests_total",
    "API requests by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "dispatcher_http_request_duration_seconds",
    "API request latency by route template and method.",
    ["route", "method"],
)
DELIVERIES = Counter(
    "dispatcher_deliveries_total",
    "Deliveries that reached a final status, by method and outcome.",
    ["method", "outcome"],
)
ATTEMPTS = Counter(
    "dispatcher_delivery_attempts_total",
    "Delivery attempts by method and outcome (succeeded, transient, permanent).",
    ["method", "outcome"],
)
ATTEMPT_LATENCY = Histogram(
    "dispatcher_delivery_attempt_duration_seconds",
    "Time one delivery attempt took, by method.",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "dispatcher_delivery_retries_total",
    "Attempts that failed transiently and were scheduled again, by method.",
    ["method"],
)
NOTIFICATIONS_DISABLED = Counter(
    "dispatcher_notifications_disabled_total",
    "Notifications disabled after reaching DISPATCHER_MAX_FAILURES, by method.",
    ["method"],
)


class QueueCollector:
    """Queue gauges computed from the database when scraped.

    ``dispatcher_pending_deliveries{method}``: deliveries with status pending.
    ``dispatcher_oldest_pending_delivery_age_seconds``: how long the oldest due pending
    delivery has been due (0 when none is). A database that cannot be reached leaves the
    gauges out of the scrape (and logs why) rather than failing it.
    """

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "dispatcher_pending_deliveries",
            "Deliveries waiting to be sent (status pending), by method.",
            labels=["method"],
        )
        oldest = GaugeMetricFamily(
            "dispatcher_oldest_pending_delivery_age_seconds",
            "How long the oldest due pending delivery has been due.",
        )
        now = utcnow()
        try:
            with self._sessions() as session:
                counts = session.execute(
                    select(Notification.method, func.count(Delivery.id))
                    .join(Notification, Delivery.notification_id == Notification.id)
                    .where(Delivery.status == DeliveryStatus.PENDING)
                    .group_by(Notification.method)
                ).all()
                due_since = session.scalar(
                    select(func.min(Delivery.next_attempt_at)).where(
                        Delivery.status == DeliveryStatus.PENDING,
                        Delivery.next_attempt_at <= now,
                    )
                )
        except SQLAlchemyError as exc:
            log.warning("queue metrics skipped: database unavailable (%s)", type(exc).__name__)
            return
        for method, count in counts:
            depth.add_metric([method], float(count))
        age = 0.0
        if due_since is not None:
            age = max(0.0, (now - _aware(due_since)).total_seconds())
        oldest.add_metric([], age)
        yield depth
        yield oldest


class CombinedCollector:
    """Several collectors exposed as one (the process's own metrics plus the queue's)."""

    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def process_collector() -> Collector:
    """This process's metrics: aggregated over all processes in multi-process mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def exposition(sessions: Callable[[], Session]) -> bytes:
    """The Prometheus text of this process (or process group) and of the queue."""
    return generate_latest(CombinedCollector(process_collector(), QueueCollector(sessions)))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the worker's endpoint ----------------------------------------------------------------


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
