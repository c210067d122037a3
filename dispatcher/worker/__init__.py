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

Nothing here does I/O at import time.
"""
