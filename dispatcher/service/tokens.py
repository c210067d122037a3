"""Bearer tokens: opaque random secrets, stored only as a SHA-256 hash.

A token carries scopes (``repo:admin`` for the notification API, ``events:write`` for
producers) and grants naming the repositories it covers: ``ns/repo``, ``ns/*`` or ``*``.
It may expire and can be revoked; both make it invalid (401), as does an unknown secret.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.bounds import check_text, is_valid_name
from dispatcher.errors import (
    AuthError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    echo,
)
from dispatcher.models import AccessToken, utcnow
from dispatcher.vocabulary import Scope

TOKEN_PREFIX = "dsp_"
NAME_MAX = 255


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, scopes, grants and name (None if it has none)."""

    token_id: int
    scopes: tuple[str, ...]
    grants: tuple[str, ...]
    name: str | None = None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_grant(grant: str) -> str:
    """``grant`` if it is ``*``, ``namespace/*`` or ``namespace/name`` with Quay's naming rules;
    InvalidRequestError otherwise."""
    namespace, slash, name = grant.partition("/")
    valid = grant == "*" or (bool(slash) and is_valid_name(namespace, "x" if name == "*" else name))
    if not valid:
        raise InvalidRequestError(
            f"Invalid repository grant '{echo(grant)}': use namespace/name, namespace/* or *"
        )
    return grant


def create_token(
    session: Session,
    *,
    scopes: Sequence[str],
    grants: Sequence[str],
    expires_in: float | None = None,
    name: str | None = None,
) -> tuple[AccessToken, str]:
    """Store a new token and return it with its secret, which is shown once and never again."""
    if not scopes:
        raise InvalidRequestError("A token needs at least one scope: " + ", ".join(Scope))
    for scope in scopes:
        if scope not in set(Scope):
            raise InvalidRequestError(f"Unknown scope '{scope}': use " + " or ".join(Scope))
    if not grants:
        raise InvalidRequestError("A token needs at least one repository grant (--repo)")
    for grant in grants:
        validate_grant(grant)
    if name is not None:
        check_text(name, "name")
        if len(name) > NAME_MAX:
            raise InvalidRequestError(f"A token name has at most {NAME_MAX} characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = AccessToken(
        name=name,
        token_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        grants=list(dict.fromkeys(grants)),
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
    )
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str | None, now: datetime | None = None) -> Principal:
    """The principal for a bearer secret; AuthError if missing, unknown, expired or revoked."""
    if not secret:
        raise AuthError()
    token = session.scalars(
        select(AccessToken).where(AccessToken.token_hash == hash_secret(secret))
    ).one_or_none()
    now = now or utcnow()
    if token is None or token.revoked_at is not None:
        raise AuthError()
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthError()
    return Principal(
        token_id=token.id, scopes=tuple(token.scopes), grants=tuple(token.grants), name=token.name
    )


def grant_covers(grant: str, namespace: str, name: str) -> bool:
    if grant == "*":
        return True
    grant_namespace, _, grant_name = grant.partition("/")
    return grant_namespace == namespace and grant_name in ("*", name)


def authorize(principal: Principal, scope: str, namespace: str, name: str) -> None:
    """PermissionDeniedError unless the principal has ``scope`` on ``namespace/name``."""
    if scope not in principal.scopes:
        raise PermissionDeniedError()
    if not any(grant_covers(grant, namespace, name) for grant in principal.grants):
        raise PermissionDeniedError()


def list_tokens(session: Session) -> Sequence[AccessToken]:
    return session.scalars(select(AccessToken).order_by(AccessToken.id)).all()


def revoke_token(session: Session, token_id: int) -> AccessToken:
    token = session.get(AccessToken, token_id)
    if token is None:
        raise NotFoundError(f"No token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def token_state(token: AccessToken, now: datetime | None = None) -> str:
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"
