"""Delivery methods: one module per method (webhook, Slack, e-mail) and what they share.

* :mod:`~dispatcher.senders.registry` — the methods, their config validation and the senders a
  worker builds;
* :mod:`~dispatcher.senders.base` — the sender interface;
* :mod:`~dispatcher.senders.rendering` and :mod:`~dispatcher.senders.jsontemplate` — the
  words and bodies users read (pure);
* :mod:`~dispatcher.senders.http`, :mod:`~dispatcher.senders.transport` and
  :mod:`~dispatcher.senders.netguard` — one HTTP attempt, the pooled transport, and where it
  may connect.
"""
