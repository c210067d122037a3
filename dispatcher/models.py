"""ORM models: the database is the source of truth, the broker only a doorbell.

repositories ─< notifications ─< deliveries >─ events
     │               │               └─< attempts
     │               └─< expiry_announcements
     └─< authorized_emails (addresses confirmed for the repository's e-mail notifications)
access_tokens (stand alone; grants name repositories by pattern)
server_secrets (stand alone; e.g. the console's cookie-signing key when none is configured)

A notification is disabled while ``disabled_at`` is set (when ``number_of_failures`` reaches
``max_failures``); reset clears both. A delivery is ``pending`` until it ends ``succeeded``,
``failed`` or ``skipped``; ``lease_until`` marks a doorbell rung or a worker holding it. A
recovery (``recovers_id`` set) is a new delivery of a failed or skipped one's event; the
column is unique, so a delivery is recovered at most once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from dispatcher.db import Base
from dispatcher.vocabulary import DeliveryKind, DeliveryStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


def stored_utc(value: datetime) -> datetime:
    """How a time is stored: naive UTC. Raises ValueError for a naive ``value``."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given; use dispatcher.models.utcnow()")
    return value.astimezone(UTC).replace(tzinfo=None)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else stored_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_repositories_namespace_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    notifications: Mapped[list[Notification]] = relationship(
        back_populates="repository", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_repository_event", "repository_id", "event"),
        UniqueConstraint("repository_id", "uuid", name="uq_notifications_repository_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid, unique=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    event_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    title: Mapped[str | None] = mapped_column(String(255), nullable=True)
    number_of_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    repository: Mapped[Repository] = relationship(back_populates="notifications")

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


class AccessToken(Base):
    """A bearer token. Only the SHA-256 of the secret is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    grants: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Event(Base):
    """One occurrence reported by a producer (or a test sample), with Quay's event data."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    performer: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One notification's copy of one event; its id is the ``webhook-id`` on every attempt."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_notification_created", "notification_id", "created_at"),
        Index("ix_deliveries_event", "event_id"),
        Index("ix_deliveries_created_at", "created_at"),
        Index("ix_deliveries_recovers", "recovers_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=DeliveryKind.EVENT)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The failed or skipped delivery this one recovers; forgotten when that one is pruned.
    recovers_id: Mapped[str | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL", name="fk_deliveries_recovers_id"),
        nullable=True,
    )

    notification: Mapped[Notification] = relationship()
    event: Mapped[Event] = relationship()
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="delivery",
        order_by="Attempt.number",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def is_test(self) -> bool:
        return self.kind == DeliveryKind.TEST


class Attempt(Base):
    """One try at sending a delivery. Errors and excerpts are trimmed and hold no secrets."""

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_delivery", "delivery_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")


class ExpiryAnnouncement(Base):
    """A tag already announced by a ``repo_image_expiry`` notification for one expiry time."""

    __tablename__ = "expiry_announcements"
    __table_args__ = (
        UniqueConstraint(
            "notification_id", "tag", "expires_at", name="uq_expiry_announcements_tag"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """A producer's idempotency key and what its emit stored, so that the same report sent
    again (a retry after an error) is answered with the first result and stores nothing."""

    __tablename__ = "idempotency_keys"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    delivery_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthorizedEmail(Base):
    """An e-mail address confirmed, or waiting to be, for one repository's e-mail notifications
    (Quay's RepositoryAuthorizedEmail). Only the SHA-256 of the confirmation code is stored."""

    __tablename__ = "authorized_emails"
    __table_args__ = (
        UniqueConstraint("repository_id", "email", name="uq_authorized_emails_repository_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(255))
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    repository: Mapped[Repository] = relationship()


class ServerSecret(Base):
    """A secret the service generated for itself, shared by every process on the database."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = [
    "AccessToken",
    "Attempt",
    "AuthorizedEmail",
    "Delivery",
    "Event",
    "ExpiryAnnouncement",
    "Notification",
    "Repository",
    "ServerSecret",
    "utcnow",
]
