"""Quay's account views that its clients read before they manage notifications.

``GET /api/v1/user/`` (getLoggedInUser), ``GET /api/v1/organization/{orgname}``
(getOrganization) and ``GET /api/v1/repository/{namespace}/{repository}`` (getRepo), in
Quay's shapes and under the notification endpoints' rules: 401 without a valid token; for the
organization and the repository 403 without ``repo:admin`` on them, then 404 when nothing is
registered there. What dispatcher cannot know is answered with Quay's field and a neutral
value (no e-mail, not public, no tags, …), listed in the README; avatars are computed as Quay
computes them for an account without an e-mail address (from the name alone).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dispatcher.api.deps import AdminRepositoryDep, PrincipalDep, SessionDep
from dispatcher.api.problems import PROBLEM_RESPONSES
from dispatcher.service import accounts

router = APIRouter(prefix="/api/v1", tags=["quay accounts"])

# Quay's default AVATAR_COLORS; an avatar's colour is picked from them by its hash.
AVATAR_COLORS = (
    *("#969696", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896"),
    *("#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7"),
    *("#bcbd22", "#1f77b4", "#17becf", "#9edae5", "#393b79", "#5254a3", "#6b6ecf", "#9c9ede"),
    *("#9ecae1", "#31a354", "#b5cf6b", "#a1d99b", "#8c6d31", "#ad494a", "#e7ba52", "#a55194"),
)
_AUTH_ONLY: dict[int | str, dict[str, Any]] = {401: PROBLEM_RESPONSES[401]}


class Avatar(BaseModel):
    """Quay's avatar data: the colour and hash Quay derives from the name."""

    name: str
    hash: str
    color: str
    kind: Literal["user", "org"]

    @classmethod
    def of(cls, name: str, kind: Literal["user", "org"]) -> Avatar:
        digest = hashlib.sha256(name.strip().lower().encode()).hexdigest()
        # Quay reads as many hex digits as it takes to index its colours: two for 32.
        color = AVATAR_COLORS[int(digest[:2], 16) % len(AVATAR_COLORS)]
        return cls(name=name, hash=digest, color=color, kind=kind)


class UserOrganization(BaseModel):
    """A namespace in the caller's ``organizations`` list."""

    name: str
    avatar: Avatar
    can_create_repo: bool = Field(description="Always false: repositories come from producers")
    public: bool = Field(description="Always false")
    is_org_admin: bool = Field(description="repo:admin with a grant on the whole namespace")
    preferred_namespace: bool = Field(description="Always false")


class UserView(BaseModel):
    """The caller (a token) in Quay's user view."""

    anonymous: bool = Field(description="Always false: every call carries a token")
    username: str = Field(description="The token's name, or token-<id> without one")
    avatar: Avatar
    is_me: bool
    can_create_repo: bool = Field(description="Always false: repositories come from producers")
    organizations: list[UserOrganization]
    super_user: bool = Field(description="Always false: dispatcher has no superusers")


class OrganizationView(BaseModel):
    """A namespace with registered repositories, in Quay's organization view."""

    name: str
    email: str = Field(description="Always empty: dispatcher knows no contact address")
    avatar: Avatar
    is_admin: bool = Field(description="repo:admin with a grant on the whole namespace")
    is_member: bool
    teams: dict[str, Any] = Field(description="Always empty: dispatcher has no teams")
    ordered_teams: list[str] = Field(description="Always empty")


class RepositoryView(BaseModel):
    """A registered repository in Quay's repository view."""

    namespace: str
    name: str
    kind: Literal["image"]
    description: str | None = Field(description="Always null: not known here")
    is_public: bool = Field(description="Always false: visibility is not known here")
    is_organization: bool = Field(description="Always true, as the organization view shows it")
    is_starred: bool = Field(description="Always false")
    status_token: str = Field(description="Always empty")
    trust_enabled: bool = Field(description="Always false")
    tag_expiration_s: int | None = Field(description="Always null: not known here")
    is_free_account: bool = Field(description="Always true: no billing")
    state: Literal["NORMAL"]
    can_write: bool
    can_admin: bool
    tags: dict[str, Any] = Field(
        default_factory=dict, description="Always empty; omitted with includeTags=false"
    )


@router.get(
    "/user/",
    operation_id="getLoggedInUser",
    summary="The caller, in Quay's user view",
    responses=_AUTH_ONLY,
)
@router.get("/user", include_in_schema=False)
def get_user(principal: PrincipalDep, session: SessionDep) -> UserView:
    name = accounts.caller_name(principal)
    organizations = [
        UserOrganization(
            name=item.name,
            avatar=Avatar.of(item.name, "org"),
            can_create_repo=False,
            public=False,
            is_org_admin=item.is_admin,
            preferred_namespace=False,
        )
        for item in accounts.namespaces(session, principal)
    ]
    return UserView(
        anonymous=False,
        username=name,
        avatar=Avatar.of(name, "user"),
        is_me=True,
        can_create_repo=False,
        organizations=organizations,
        super_user=False,
    )


@router.get(
    "/organization/{orgname}",
    operation_id="getOrganization",
    summary="A namespace with registered repositories, in Quay's organization view",
    responses=PROBLEM_RESPONSES,
)
@router.get("/organization/{orgname}/", include_in_schema=False)
def get_organization(
    orgname: str, principal: PrincipalDep, session: SessionDep
) -> OrganizationView:
    found = accounts.namespace(session, principal, orgname)
    return OrganizationView(
        name=found.name,
        email="",
        avatar=Avatar.of(found.name, "org"),
        is_admin=found.is_admin,
        is_member=True,
        teams={},
        ordered_teams=[],
    )


@router.get(
    "/repository/{namespace}/{repository}",
    operation_id="getRepo",
    summary="A registered repository, in Quay's repository view",
    responses=PROBLEM_RESPONSES,
    response_model_exclude_unset=True,
)
@router.get(
    "/repository/{namespace}/{repository}/",
    include_in_schema=False,
    response_model_exclude_unset=True,
)
def get_repository(repository: AdminRepositoryDep, includeTags: bool = True) -> RepositoryView:
    tags: dict[str, Any] = {"tags": {}} if includeTags else {}
    return RepositoryView(
        namespace=repository.namespace,
        name=repository.name,
        kind="image",
        description=None,
        is_public=False,
        is_organization=True,
        is_starred=False,
        status_token="",
        trust_enabled=False,
        tag_expiration_s=None,
        is_free_account=True,
        state="NORMAL",
        # the dependency checked repo:admin on it, which implies write
        can_write=True,
        can_admin=True,
        **tags,
    )
