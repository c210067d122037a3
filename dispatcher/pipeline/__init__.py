"""The deliveries table's state machine, in the order a delivery lives it. No Celery, no
threads of its own, no HTTP: the worker drives it, the senders do the I/O.

1. :mod:`~dispatcher.pipeline.outbox` — a delivery is born, pending and due, in the
   transaction that stores its event (the one writer of new rows);
2. :mod:`~dispatcher.pipeline.doorbell` — after commit, workers are told that due work exists;
3. :mod:`~dispatcher.pipeline.claim` — a worker claims due deliveries under a lease (the one
   definition of "due");
4. :mod:`~dispatcher.pipeline.attempt` — render → send → classify, one attempt, no database;
5. :mod:`~dispatcher.pipeline.policy` — what the outcome makes of the delivery and of its
   notification's failure counter (pure);
6. :mod:`~dispatcher.pipeline.record` — the outcome is written where the claim still holds;
7. :mod:`~dispatcher.pipeline.sweep` — due retries and expired leases are rung again, and the
   log is pruned.

Every statement that changes ``deliveries`` is in one of these modules.
"""
