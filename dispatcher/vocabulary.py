"""The closed sets of words the database, the API and the command line share: delivery
statuses and kinds, token scopes. Plain tuples with no imports, so that building the
command-line parser (its ``choices``) does not load the ORM."""

from __future__ import annotations

DELIVERY_STATUSES = ("pending", "succeeded", "failed", "skipped")
FINAL_STATUSES = ("succeeded", "failed", "skipped")
DELIVERY_KINDS = ("event", "test", "redelivery")
SCOPES = ("repo:admin", "events:write")
