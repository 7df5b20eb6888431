"""Creating a membership on the event loop: the SDK's ``create_organization_membership``
as one statement on the async pool, with no thread and no ORM.

The unit-of-work route (``services.add_membership``) costs a dozen ORM statements and
several thread hops per create (docs/benchmarks.md). For the common case it does nothing
that needs them: a new membership of a user with no directory user and no SSO profile in
the organization, whose roles therefore come from the API roles given or the default.
That case runs here, as one statement, ``CREATE``, in a transaction of its own
(autocommit: one round trip). Its data-modifying CTEs read what the unit of work would
(the organization, the user, an existing membership of the pair, any directory or SSO
source of it, the configuration token), and only if this is the common case, write the
membership, its effective and API roles, the audit entry, the
``organization_membership.created`` event and the answer under the ``Idempotency-Key``
(claimed as ``IdempotencyGuard.claim`` does: a key in use is waited for, a key used
before writes nothing).

Roles are resolved before the statement, by the pure resolver, from the organization's
role state cached under the configuration token; the statement writes only at that
token, and a changed token starts again from a fresh read. The user object is rendered
by PostgreSQL (``queries.user_json_sql``), so that the answer stored for the key is the
one returned.

Anything else answers ``None`` with nothing written, and the
route runs the unit of work, which gives the same answer it always did: a request body or
role the API refuses, an organization or user that does not exist, an existing membership
(409, or reactivation), a user the directory or SSO sources reach, an idempotency key
already used, a concurrent create of the same pair, a pooled connection the server closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Table, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from idp_sync.auth.idempotency import IdempotencyGuard
from idp_sync.auth.models import IdempotencyRecord
from idp_sync.db import utcnow
from idp_sync.directory.models import DirectoryUser
from idp_sync.errors import Unprocessable
from idp_sync.events.models import Event
from idp_sync.ids import new_id
from idp_sync.memberships.models import (
    MembershipApiRole,
    MembershipAudit,
    MembershipRole,
    OrganizationMembership,
)
from idp_sync.memberships.queries import user_json_sql
from idp_sync.memberships.recompute import RoleCatalog
from idp_sync.memberships.serializers import membership_data
from idp_sync.memberships.services import check_role_slugs
from idp_sync.organizations.models import Organization
from idp_sync.rbac.resolver import MembershipInput, RoleState, resolve
from idp_sync.runtime import PostgresReader, Runtime
from idp_sync.sso.models import SsoProfile
from idp_sync.tasks import request_sequencing
from idp_sync.users.models import User

CREATED = 201
EVENT = "organization_membership.created"
REASON = "membership_created"  # the audit reason, as services._insert writes it


@dataclass(frozen=True)
class OrgRoleIndex:
    """What creating a membership needs of an organization's roles: the resolver's state
    and the id of each role assignable there. Immutable: shared between requests."""

    state: RoleState
    role_ids: Mapping[str, str]  # slug -> role id

    @classmethod
    def load(cls, session: Session, organization_id: str) -> OrgRoleIndex:
        org = RoleCatalog(session).for_org(organization_id)
        ids = {slug: role.id for slug, role in org.by_slug.items()}
        return cls(org.state, MappingProxyType(ids))

    def api_roles(self, requested: Sequence[str] | None) -> list[str] | None:
        """The API roles as ``services.validate_role_slugs`` accepts them, or None where
        it refuses them (the unit of work then answers with its error)."""
        if requested is None:
            return []
        try:
            return check_role_slugs(
                requested, assignable=self.role_ids, multiple_roles=self.state.multiple_roles
            )
        except Unprocessable:
            return None


def _cache_key(organization_id: str) -> tuple[str, str]:
    return ("org_role_index", organization_id)


def load_index(runtime: Runtime, organization_id: str) -> tuple[int | None, OrgRoleIndex]:
    """The organization's index at the current token, from the cache or the database
    (token first, as ``config_cache`` requires). In the threadpool: it uses the ORM."""
    cache = runtime.config_cache
    with runtime.engine.connect() as conn:
        token = cache.token(conn)
        with Session(bind=conn) as session:
            key = _cache_key(organization_id)
            index = cache.get(token, key, lambda: OrgRoleIndex.load(session, organization_id))
        conn.rollback()
    return token, index


# --- the statements ------------------------------------------------------------------

_T = {
    name: cast(Table, model.__table__)
    for name, model in {
        "om": OrganizationMembership,
        "roles": MembershipRole,
        "api": MembershipApiRole,
        "audit": MembershipAudit,
        "events": Event,
        "idem": IdempotencyRecord,
        "orgs": Organization,
        "users": User,
        "du": DirectoryUser,
        "sso": SsoProfile,
    }.items()
}


def _pair_has(table: Table) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {table.name} "  # noqa: S608 - names from the tables only
        "WHERE organization_id = :organization_id AND user_id = :user_id)"
    )


def _roles_insert(table: Table, prefix: str) -> str:
    return (
        f"INSERT INTO {table.name} (membership_id, role_id, role_slug, position) "  # noqa: S608
        "SELECT :id, r.role_id, r.role_slug, r.n - 1 "
        f"FROM go, unnest(CAST(:{prefix}_ids AS varchar[]), CAST(:{prefix}_slugs AS varchar[])) "
        "WITH ORDINALITY AS r(role_id, role_slug, n)"
    )


# ``found``: what the unit of work would read first (the organization, the user, an
# existing membership of the pair, any IdP source of it) and the configuration token.
# ``ok``: the common case, at the token the roles were resolved under. ``claim``: the
# Idempotency-Key with its answer (a key already used conflicts: nothing is written, and
# a concurrent request's key is waited for). ``go``: one row if the create goes ahead;
# every write reads it, so none happens without it.
CREATE = text(
    "WITH found AS (SELECT o.name AS organization_name, u.id AS user_id, "  # noqa: S608
    f"{user_json_sql('u')} AS user_object, "
    "(SELECT token FROM config_version WHERE id = 1) AS token, "
    f"{_pair_has(_T['om'])} AS member, "
    f"{_pair_has(_T['du'])} AS directory_user, "
    f"{_pair_has(_T['sso'])} AS sso_profile "
    f"FROM (SELECT 1) AS one LEFT JOIN {_T['orgs'].name} AS o ON o.id = :organization_id "
    f"LEFT JOIN {_T['users'].name} AS u ON u.id = :user_id), "
    "ok AS (SELECT * FROM found WHERE token = :token AND organization_name IS NOT NULL "
    "AND user_id IS NOT NULL AND NOT member AND NOT directory_user AND NOT sso_profile), "
    f"claim AS (INSERT INTO {_T['idem'].name} (key, fingerprint, status_code, body, created_at) "
    f"SELECT :idempotency_key, :fingerprint, {CREATED}, CAST(:data AS jsonb) || "
    "jsonb_build_object('user', ok.user_object, 'organization_name', ok.organization_name), "
    ":now FROM ok WHERE CAST(:idempotency_key AS varchar) IS NOT NULL "
    "ON CONFLICT (key) DO NOTHING RETURNING key), "
    "go AS (SELECT 1 AS one FROM ok WHERE CAST(:idempotency_key AS varchar) IS NULL "
    "UNION ALL SELECT 1 FROM claim), "
    f"membership AS (INSERT INTO {_T['om'].name} "
    "(id, organization_id, user_id, status, directory_managed, role_source, uses_default, "
    "provenance, custom_attributes, created_at, updated_at) "
    "SELECT :id, :organization_id, :user_id, 'active', false, :source, :uses_default, "
    "CAST(:provenance AS jsonb), CAST('{}' AS jsonb), :now, :now FROM go), "
    f"roles AS ({_roles_insert(_T['roles'], 'role')}), "
    f"api_roles AS ({_roles_insert(_T['api'], 'api_role')}), "
    f"audit AS (INSERT INTO {_T['audit'].name} "
    "(membership_id, organization_id, before_roles, after_roles, source, reason, created_at) "
    "SELECT :id, :organization_id, CAST('[]' AS jsonb), CAST(:after_roles AS jsonb), "
    f":source, '{REASON}', :now FROM go), "
    f"event AS (INSERT INTO {_T['events'].name} (id, event, data, organization_id, created_at) "
    f"SELECT :event_id, '{EVENT}', CAST(:data AS jsonb), :organization_id, :now FROM go) "
    "SELECT found.token, found.organization_name, found.user_object, "
    "(SELECT count(*) FROM go) AS created FROM found"
)


# --- the create ----------------------------------------------------------------------


class _Fallback(Exception):
    """Not the common case: roll back; the unit of work answers."""


class _TokenChanged(Exception):
    """The configuration changed since the index was cached: load it again."""


async def create(
    runtime: Runtime,
    reader: PostgresReader,
    *,
    organization_id: str,
    user_id: str,
    role_slugs: Sequence[str] | None,
    guard: IdempotencyGuard | None,
) -> dict[str, Any] | None:
    """The new membership as the API returns it (201), or None: run the unit of work."""
    cached: tuple[int | None, Any] | None = runtime.config_cache.peek(_cache_key(organization_id))
    for _attempt in (1, 2):
        if cached is not None:
            token, index = cached
        else:
            token, index = await run_in_threadpool(load_index, runtime, organization_id)
        if token is None:
            return None
        api_roles = index.api_roles(role_slugs)
        if api_roles is None:
            if cached is None:
                return None  # refused at the current configuration: the unit of work says why
            cached = None  # perhaps a role added since the index was cached: read it
            continue
        try:
            body = await _create(reader, token, index, api_roles, organization_id, user_id, guard)
        except _TokenChanged:
            cached = None  # another configuration: read it, then try once more
            continue
        except _Fallback:
            return None
        except psycopg.Error:
            # A concurrent create of the pair, a role deleted meanwhile, a value the
            # database refuses, a closed connection: nothing was written; the unit of
            # work says what it is.
            return None
        after_commit(runtime)
        return body
    return None


async def _create(
    reader: PostgresReader,
    token: int,
    index: OrgRoleIndex,
    api_roles: list[str],
    organization_id: str,
    user_id: str,
    guard: IdempotencyGuard | None,
) -> dict[str, Any]:
    resolution = resolve(index.state, MembershipInput(api_roles=tuple(api_roles)))
    roles = list(resolution.roles)
    now = utcnow()
    membership_id = new_id("membership")
    data = membership_data(
        id=membership_id,
        user_id=user_id,
        organization_id=organization_id,
        status="active",
        role_slugs=roles,
        directory_managed=False,
        custom_attributes=None,
        created_at=now,
        updated_at=now,
    )
    provenance = {
        "source": resolution.source,
        "uses_default": resolution.uses_default,
        "matched_groups": list(resolution.matched_groups),
        "mapping_ids": list(resolution.mapping_ids),
    }
    rows = await reader.write(
        CREATE,
        {
            "organization_id": organization_id,
            "user_id": user_id,
            "now": now,
            "token": token,
            "idempotency_key": guard.key if guard is not None else None,
            "fingerprint": guard.fingerprint if guard is not None else None,
            "id": membership_id,
            "source": resolution.source,
            "uses_default": resolution.uses_default,
            "provenance": Jsonb(provenance),
            "role_ids": [index.role_ids[slug] for slug in roles],
            "role_slugs": roles,
            "api_role_ids": [index.role_ids[slug] for slug in api_roles],
            "api_role_slugs": api_roles,
            "after_roles": Jsonb(roles),
            "event_id": new_id("event"),
            "data": Jsonb(data),
        },
    )
    found = rows[0]
    if not found["created"]:
        raise _TokenChanged if found["token"] != token else _Fallback
    return {
        **data,
        "user": found["user_object"],
        "organization_name": found["organization_name"],
    }


def after_commit(runtime: Runtime) -> None:
    """The event is written: ask the sequencer to position it (``tasks.request_sequencing``,
    as the session's after-commit hook does)."""
    if runtime.celery is not None:
        request_sequencing(runtime.celery)
