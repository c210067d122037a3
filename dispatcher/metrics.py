"""Prometheus metrics. The objects live here; API and worker code only call them.

In worker processes started by ``dispatcher worker`` the registry runs in multi-process mode
(``PROMETHEUS_MULTIPROC_DIR``), so prefork children aggregate on the worker's metrics port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Notifications disabled after reaching DISPATCHER_MAX_FAILURES.",
)
QUEUE_DEPTH = Gauge(
    "dispatcher_pending_deliveries",
    "Deliveries waiting to be sent (status pending).",
    multiprocess_mode="max",
)
OLDEST_PENDING_AGE = Gauge(
    "dispatcher_oldest_pending_delivery_age_seconds",
    "Age of the oldest due pending delivery.",
    multiprocess_mode="max",
)
