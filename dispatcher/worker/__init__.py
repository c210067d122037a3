"""Delivery workers: the processes (and threads) that drain due deliveries.

* :mod:`~dispatcher.worker.app` — :func:`~dispatcher.worker.app.create_celery`, the Celery
  app of ``dispatcher worker`` and its one task, ``dispatcher.drain()``;
* :mod:`~dispatcher.worker.bell` — the broker bell: how other processes ring the workers;
* :mod:`~dispatcher.worker.context` — what one worker process holds, and the drain;
* :mod:`~dispatcher.worker.pool` — the sender pool: an event loop sending, a recorder thread
  writing outcomes; :mod:`~dispatcher.worker.lanes` — its per-target bookkeeping, pure;
* :mod:`~dispatcher.worker.sweeper` — the sweep on a timer;
* :mod:`~dispatcher.worker.embedded` — worker and sweep as threads of ``dispatcher serve``
  when no broker is configured.

Nothing here does I/O at import time. ``celery -A dispatcher.worker …`` finds :data:`app`:
the worker's Celery app, made on first use from the ``DISPATCHER_*`` settings.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``app`` (and ``celery``, the other name Celery looks for), made once, on first use."""
    if name not in ("app", "celery"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from dispatcher.config import get_settings
    from dispatcher.worker.app import worker_app

    made = worker_app(get_settings())
    globals().update(app=made, celery=made)  # made once: later lookups find it here
    return made
