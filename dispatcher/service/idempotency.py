"""Idempotency keys of producers: an emit with a key already used for the same repository
within ``settings.idempotency_window`` stores nothing and answers what the first one stored.

The key is stored in the transaction of the event (:func:`remember`), so either both are or
neither is; the unique key decides a race of two emits with the same key. The sweep prunes
keys older than the window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.models import IdempotencyKey, Repository, utcnow

# What the header and the option take (Stripe's and the IETF draft's shape: an opaque token
# of visible ASCII).
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def check_key(key: str) -> None:
    """InvalidRequestError unless ``key`` is 1 to 255 visible ASCII characters."""
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise InvalidRequestError(
            "An idempotency key is 1 to 255 visible ASCII characters (no spaces)"
        )


def _key_row(namespace: str, name: str, key: str) -> Any:
    return (
        select(IdempotencyKey)
        .join(Repository, Repository.id == IdempotencyKey.repository_id)
        .where(
            Repository.namespace == namespace,
            Repository.name == name,
            IdempotencyKey.key == key,
        )
    )


def replay(
    session: Session, settings: Settings, namespace: str, name: str, key: str
) -> tuple[str, tuple[str, ...]] | None:
    """The event id and delivery ids an emit with ``key`` stored within the window, or None."""
    since = utcnow() - timedelta(seconds=settings.idempotency_seconds)
    row = session.scalars(
        _key_row(namespace, name, key).where(IdempotencyKey.created_at >= since)
    ).one_or_none()
    if row is None:
        return None
    return row.event_id, tuple(row.delivery_ids)


def remember(
    session: Session,
    settings: Settings,
    namespace: str,
    name: str,
    key: str,
    delivery_ids: Sequence[str],
    *,
    event_id: str,
) -> None:
    """Store ``key`` with what its emit stored, replacing the same key from before the
    window."""
    repository_id = session.scalars(
        select(Repository.id).where(Repository.namespace == namespace, Repository.name == name)
    ).one()
    since = utcnow() - timedelta(seconds=settings.idempotency_seconds)
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.repository_id == repository_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < since,
        )
    )
    session.add(
        IdempotencyKey(
            repository_id=repository_id,
            key=key,
            event_id=event_id,
            delivery_ids=list(delivery_ids),
            created_at=utcnow(),
        )
    )
    session.flush()


__all__ = ["check_key", "remember", "replay"]
