"""Delivery workers.

* :mod:`~dispatcher.worker.context` — :class:`WorkerContext`, what one worker process holds
  (runtime, sender registry with its pooled HTTP client, sender pool) and
  :meth:`WorkerContext.deliver`, the one function the task calls.
* :mod:`~dispatcher.worker.app` — :func:`create_celery`, the Celery app and its one task
  ``dispatcher.deliver_batch(ids)``.
* :mod:`~dispatcher.worker.doorbells` — :class:`CeleryDoorbell` (broker) and
  :class:`LocalDoorbell` (in process).
* :mod:`~dispatcher.worker.embedded` — :func:`start_embedded`, worker and sweep as threads of
  ``dispatcher serve`` when no broker is configured.
* :mod:`~dispatcher.worker.pool` — :class:`SenderPool`, the per-process send threads.

Nothing here does I/O at import time.
"""
