"""What Quay's account views say about the caller, a namespace and a repository.

dispatcher has no users, organizations or teams: the caller is a bearer token and a
namespace is the name its registered repositories share. Quay's clients (its Ansible
collection first) read ``GET /user/``, ``/organization/{ns}`` and ``/repository/{ns}/{repo}``
before they touch notifications, so these answer from what dispatcher knows:

* the caller's name is the token's name (``token-<id>`` for a token without one);
* the caller "belongs to" every namespace with registered repositories that one of its
  grants names (``*`` names them all), and administers it when it holds ``repo:admin`` with a
  grant on the whole namespace (``ns/*`` or ``*``);
* every such namespace is shown as an organization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.errors import NotFoundError, PermissionDeniedError
from dispatcher.models import Repository
from dispatcher.service.tokens import Principal
from dispatcher.vocabulary import Scope


@dataclass(frozen=True)
class NamespaceAccess:
    """A namespace as the caller sees it."""

    name: str
    is_admin: bool


def caller_name(principal: Principal) -> str:
    """The name Quay's ``username`` shows for this caller."""
    return principal.name or f"token-{principal.token_id}"


def _names_namespace(grant: str, namespace: str) -> bool:
    return grant == "*" or grant.partition("/")[0] == namespace


def _administers(principal: Principal, namespace: str) -> bool:
    return Scope.REPO_ADMIN in principal.scopes and any(
        grant in ("*", f"{namespace}/*") for grant in principal.grants
    )


def namespaces(session: Session, principal: Principal) -> Sequence[NamespaceAccess]:
    """The namespaces with registered repositories that the caller's grants name, by name."""
    names = session.scalars(
        select(Repository.namespace).distinct().order_by(Repository.namespace)
    ).all()
    return [
        NamespaceAccess(name=name, is_admin=_administers(principal, name))
        for name in names
        if any(_names_namespace(grant, name) for grant in principal.grants)
    ]


def namespace(session: Session, principal: Principal, name: str) -> NamespaceAccess:
    """The namespace ``name`` for a caller with ``repo:admin`` and a grant naming it
    (PermissionDeniedError otherwise); NotFoundError when no repository is registered in it."""
    if Scope.REPO_ADMIN not in principal.scopes or not any(
        _names_namespace(grant, name) for grant in principal.grants
    ):
        raise PermissionDeniedError()
    exists = session.scalars(
        select(Repository.id).where(Repository.namespace == name).limit(1)
    ).first()
    if exists is None:
        raise NotFoundError()
    return NamespaceAccess(name=name, is_admin=_administers(principal, name))
