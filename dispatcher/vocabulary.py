"""The closed sets of words the database, the API and the command line share, as string
enums (each member is its own text): delivery statuses and kinds, what became of an attempt,
token scopes. No imports, so that building the command-line parser (its ``choices``) loads
nothing else."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """A delivery is pending until it ends in one of the three final statuses."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


class DeliveryKind(StrEnum):
    """Why a delivery exists: an event a producer reported, a test, or a redelivery."""

    EVENT = "event"
    TEST = "test"
    REDELIVERY = "redelivery"


class AttemptResult(StrEnum):
    """What became of one claimed delivery. ``released`` is no attempt: the delivery went
    back to pending (its target was saturated or its lease ran short)."""

    SUCCEEDED = "succeeded"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    INTERNAL = "internal"
    RELEASED = "released"


class Scope(StrEnum):
    """What a token may do: manage notifications, or report events."""

    REPO_ADMIN = "repo:admin"
    EVENTS_WRITE = "events:write"
