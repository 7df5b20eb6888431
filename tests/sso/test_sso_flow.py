"""The WorkOS SSO flow with the SDK unchanged, and IdP groups -> roles at every sign-in
(issue 5 points 2 and 4), through a real worker where the membership is the point."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import etree

from conftest import unique, wait_for
from sso.saml_idp import ENTRA_GROUPS, ENTRA_GROUPS_LINK, TestIdp
from sso.sso_helpers import (
    REDIRECT_URI,
    Setup,
    create_connection,
    events_of,
    post_acs,
)


def _roles(sdk, org_id: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Two organization roles; the first created has the higher priority."""
    admin = sdk.authorization.create_organization_role(
        org_id, name="Admin", slug=unique("org-admin")
    )
    viewer = sdk.authorization.create_organization_role(
        org_id, name="Viewer", slug=unique("org-viewer")
    )
    return admin.slug, viewer.slug


def _map(http: httpx.Client, connection_id: str, group: str, role_slug: str) -> dict:  # type: ignore[type-arg]
    response = http.post(
        f"/connections/{connection_id}/group_role_mappings",
        json={"group": group, "role_slug": role_slug},
    )
    assert response.status_code == 201, response.text
    return response.json()


def sign_in(sdk, http: httpx.Client, setup: Setup, groups: list[str], **kwargs):  # type: ignore[no-untyped-def]
    """SDK authorize URL -> our 302 -> the test IdP answers the AuthnRequest -> ACS ->
    the app's redirect URI with code and state -> the SDK exchanges the code."""
    url = sdk.sso.get_authorization_url(
        connection=setup.connection_id, redirect_uri=REDIRECT_URI, state="st-42"
    )
    to_idp = http.get(url, follow_redirects=False)
    assert to_idp.status_code == 302, to_idp.text
    location = urlsplit(to_idp.headers["location"])
    assert location.geturl().startswith(setup.idp.sso_url)
    query = parse_qs(location.query)
    request = etree.fromstring(
        zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)  # raw DEFLATE
    )
    assert request.get("AssertionConsumerServiceURL") == setup.acs_url
    saml_response = setup.idp.response(
        acs_url=request.get("AssertionConsumerServiceURL"),
        audience=setup.sp_entity_id,
        in_response_to=request.get("ID"),
        groups=groups,
        **kwargs,
    )
    back = post_acs(http, setup, saml_response)
    assert back.status_code == 302, back.text
    app = urlsplit(back.headers["location"])
    assert f"{app.scheme}://{app.netloc}{app.path}" == REDIRECT_URI
    params = parse_qs(app.query)
    assert params["state"] == ["st-42"]
    return sdk.sso.get_profile_and_token(code=params["code"][0]), params["code"][0]


def _membership(sdk, org_id: str):  # type: ignore[no-untyped-def]
    page = sdk.organization_membership.list_organization_memberships(organization_id=org_id)
    return page.data[0] if page.data else None


def test_sdk_flow_end_to_end_and_worker_gives_the_membership_the_role(
    sso_sdk, http, setup: Setup, sso_worker, engine
) -> None:
    admin, viewer = _roles(sso_sdk, setup.org_id)
    _map(http, setup.connection_id, "Admins", admin)
    _map(http, setup.connection_id, "Viewers", viewer)
    result, _ = sign_in(sso_sdk, http, setup, ["Viewers", "Admins"])
    profile = result.profile
    assert profile.email == "ada@example.com"
    assert profile.connection_id == setup.connection_id
    assert profile.organization_id == setup.org_id
    assert profile.role is not None and profile.role.slug == admin  # priority: admin first
    assert [r.slug for r in profile.roles or []] == [admin]
    assert profile.groups == ["Viewers", "Admins"]
    membership = wait_for(lambda: _membership(sso_sdk, setup.org_id))
    assert membership.role.slug == admin
    assert membership.user.email == "ada@example.com"
    succeeded = wait_for(
        lambda: events_of(engine, "authentication.sso_succeeded", setup.connection_id)
    )
    assert succeeded[0]["user_id"] == membership.user_id
    same = sso_sdk.sso.get_profile(access_token=result.access_token)
    assert same.id == profile.id and same.role.slug == admin


def test_a_mapped_group_gone_at_the_next_sign_in_takes_its_role_away(
    sso_sdk, http, setup: Setup, sso_worker
) -> None:
    admin, _ = _roles(sso_sdk, setup.org_id)
    _map(http, setup.connection_id, "Admins", admin)
    sign_in(sso_sdk, http, setup, ["Admins"])
    wait_for(lambda: (m := _membership(sso_sdk, setup.org_id)) and m.role.slug == admin)
    result, _ = sign_in(sso_sdk, http, setup, ["Other"])
    assert result.profile.role.slug != admin  # the default role
    wait_for(lambda: _membership(sso_sdk, setup.org_id).role.slug == result.profile.role.slug)


def test_code_is_single_use(sso_sdk, http, setup: Setup) -> None:
    from workos._errors import BadRequestError

    _, code = sign_in(sso_sdk, http, setup, [])
    with pytest.raises(BadRequestError):
        sso_sdk.sso.get_profile_and_token(code=code)


def test_token_requires_a_valid_client_secret(sso_live, sso_sdk, http, setup: Setup) -> None:
    from workos import WorkOSClient
    from workos._errors import AuthenticationError

    bad = WorkOSClient(
        api_key="sk_wrong", client_id="client_test", base_url=sso_live.url, max_retries=0
    )
    with pytest.raises(AuthenticationError):
        bad.sso.get_profile_and_token(code="whatever")


def test_unregistered_redirect_uri_is_refused_before_any_redirect(sso_sdk, http, setup) -> None:
    url = sso_sdk.sso.get_authorization_url(
        connection=setup.connection_id, redirect_uri="https://evil.test/cb", state="s"
    )
    response = http.get(url, follow_redirects=False)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_redirect_uri"
    assert "location" not in response.headers


def test_unknown_client_id_is_refused(sso_live, setup: Setup) -> None:
    from workos import WorkOSClient

    other = WorkOSClient(api_key="x", client_id="client_other", base_url=sso_live.url)
    url = other.sso.get_authorization_url(organization=setup.org_id, redirect_uri=REDIRECT_URI)
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 400 and response.json()["code"] == "invalid_client"


def test_authorize_by_organization_uses_its_active_connection(sso_sdk, http, setup) -> None:
    url = sso_sdk.sso.get_authorization_url(organization=setup.org_id, redirect_uri=REDIRECT_URI)
    response = http.get(url, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith(setup.idp.sso_url + "?SAMLRequest=")


def test_mapping_change_starts_a_recompute_job(sso_sdk, http, setup: Setup) -> None:
    admin, viewer = _roles(sso_sdk, setup.org_id)
    created = _map(http, setup.connection_id, "Admins", admin)
    assert created["job"]["type"] == "sso_mapping_change"
    path = f"/connections/{setup.connection_id}/group_role_mappings/{created['id']}"
    updated = http.put(path, json={"role_slug": viewer})
    assert updated.status_code == 200 and updated.json()["role_slug"] == viewer
    listed = http.get(f"/connections/{setup.connection_id}/group_role_mappings").json()
    assert [m["id"] for m in listed["data"]] == [created["id"]]
    assert http.delete(path).status_code == 202
    assert http.get(f"/connections/{setup.connection_id}/group_role_mappings").json()["data"] == []


def test_mapping_change_recomputes_members_through_the_job(
    sso_sdk, http, setup: Setup, sso_worker
) -> None:
    admin, _ = _roles(sso_sdk, setup.org_id)
    result, _ = sign_in(sso_sdk, http, setup, ["Admins"])
    default = result.profile.role.slug
    wait_for(lambda: (m := _membership(sso_sdk, setup.org_id)) and m.role.slug == default)
    _map(http, setup.connection_id, "Admins", admin)
    wait_for(lambda: _membership(sso_sdk, setup.org_id).role.slug == admin)


def test_entra_overage_keeps_the_last_known_groups(sso_sdk, http, sso_worker, engine) -> None:
    idp = TestIdp()
    org = sso_sdk.organizations.create_organization(name=unique("Entra"))
    conn = create_connection(sso_sdk, idp, org.id, connection_type="AzureSAML")
    saml = http.get(f"/connections/{conn.id}").json()["saml"]
    setup = Setup(idp, org.id, conn.id, saml["acs_url"], saml["sp_entity_id"])
    admin, _ = _roles(sso_sdk, org.id)
    group_id = "6f1c6c8e-0000-4000-8000-000000000001"  # Entra sends group object ids
    _map(http, conn.id, group_id, admin)
    claims = {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["ed@example.com"],
        "http://schemas.microsoft.com/identity/claims/objectidentifier": ["oid-ed"],
    }
    first, _ = sign_in(sso_sdk, http, setup, [], attributes={**claims, ENTRA_GROUPS: [group_id]})
    assert first.profile.role.slug == admin and first.profile.email == "ed@example.com"
    link = {ENTRA_GROUPS_LINK: ["https://graph.microsoft.com/v1.0/users/oid-ed/getMemberObjects"]}
    second, _ = sign_in(sso_sdk, http, setup, [], attributes={**claims, **link})
    assert second.profile.role.slug == admin  # not downgraded
    assert second.profile.groups == [group_id]
    events = wait_for(
        lambda: (
            (e := events_of(engine, "authentication.sso_succeeded", conn.id)) and len(e) == 2 and e
        )
    )
    assert events[-1].get("groups_overage") is True
    wait_for(lambda: (m := _membership(sso_sdk, org.id)) and m.role.slug == admin)


def test_the_sign_in_task_body_is_idempotent(sso_live, sso_sdk, http, setup: Setup, engine) -> None:
    """A redelivered sign-in (acks_late) folds in once: one user, one membership, one event."""
    import sqlalchemy as sa

    from idp_sync.sso.signin import process_login

    result, _ = sign_in(sso_sdk, http, setup, [])
    with engine.connect() as conn:
        login_id = conn.execute(
            sa.text("SELECT id FROM sso_login_events WHERE profile_id = :p"),
            {"p": result.profile.id},
        ).scalar_one()
    outcomes = []
    for _ in range(2):
        with sso_live.runtime.transaction() as session:
            outcomes.append(process_login(session, login_id))
    assert outcomes == ["done", "skipped"]
    page = sso_sdk.organization_membership.list_organization_memberships(
        organization_id=setup.org_id
    )
    assert len(page.data) == 1
    with engine.connect() as conn:
        created = conn.execute(
            sa.text(
                "SELECT count(*) FROM events WHERE organization_id = :o "
                "AND event = 'organization_membership.created'"
            ),
            {"o": setup.org_id},
        ).scalar_one()
    assert created == 1
    assert len(events_of(engine, "authentication.sso_succeeded", setup.connection_id)) == 1


def test_redirect_uris_registered_through_the_api(sso_sdk, http, setup: Setup) -> None:
    uri = f"https://app.test/{unique('cb')}"
    created = http.post("/sso/redirect_uris", json={"uri": uri})
    assert created.status_code == 201, created.text
    listed = http.get("/sso/redirect_uris").json()["data"]
    assert uri in [r["uri"] for r in listed]
    url = sso_sdk.sso.get_authorization_url(connection=setup.connection_id, redirect_uri=uri)
    assert http.get(url, follow_redirects=False).status_code == 302
    assert http.delete(f"/sso/redirect_uris/{created.json()['id']}").status_code == 204
    refused = http.get(url, follow_redirects=False)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_redirect_uri"
    plain = http.post("/sso/redirect_uris", json={"uri": "http://app.test/cb"})
    assert plain.status_code == 422  # http only on loopback


def test_overage_keeps_the_role_and_the_role_explanation_says_so(sso_sdk, http, sso_worker) -> None:
    """Issue 5 point 4: groups, then the Entra overage claim, then groups again."""
    idp = TestIdp()
    org = sso_sdk.organizations.create_organization(name=unique("Overage"))
    conn = create_connection(sso_sdk, idp, org.id, connection_type="AzureSAML")
    saml = http.get(f"/connections/{conn.id}").json()["saml"]
    setup = Setup(idp, org.id, conn.id, saml["acs_url"], saml["sp_entity_id"])
    admin, _ = _roles(sso_sdk, org.id)
    group_id = "6f1c6c8e-0000-4000-8000-000000000002"
    _map(http, conn.id, group_id, admin)
    claims = {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["ov@example.com"],
        "http://schemas.microsoft.com/identity/claims/objectidentifier": ["oid-ov"],
    }
    link = {ENTRA_GROUPS_LINK: ["https://graph.microsoft.com/v1.0/users/oid-ov/getMemberObjects"]}

    def explanation() -> dict:  # type: ignore[type-arg]
        membership = _membership(sso_sdk, org.id)
        path = f"/user_management/organization_memberships/{membership.id}/role_explanation"
        response = http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    sign_in(sso_sdk, http, setup, [], attributes={**claims, ENTRA_GROUPS: [group_id]})
    wait_for(lambda: (m := _membership(sso_sdk, org.id)) and m.role.slug == admin)
    known = explanation()
    assert known["source"] == "sso" and known["roles"] == [admin]
    assert known["sso"]["groups_overage"] is False and "note" not in known["sso"]
    received = known["sso"]["groups_received_at"]

    sign_in(sso_sdk, http, setup, [], attributes={**claims, **link})
    overage = wait_for(lambda: (e := explanation())["sso"]["groups_overage"] and e)
    assert _membership(sso_sdk, org.id).role.slug == admin  # not downgraded
    assert overage["roles"] == [admin] and overage["matched_groups"] == [group_id]
    sso = overage["sso"]
    assert sso["connection_id"] == conn.id and sso["groups"] == [group_id]
    assert sso["groups_received_at"] == received
    assert sso["last_sign_in_at"] > received
    assert "last known groups" in sso["note"] and received in sso["note"]

    sign_in(sso_sdk, http, setup, [], attributes={**claims, ENTRA_GROUPS: [group_id]})
    again = wait_for(lambda: not (e := explanation())["sso"]["groups_overage"] and e)
    assert again["sso"]["groups_received_at"] > received and "note" not in again["sso"]


def test_mapping_changes_can_be_previewed_without_writing(
    sso_sdk, http, setup: Setup, sso_worker, engine
) -> None:
    """Issue 6 point 6 for SSO mappings: ``dry_run=true`` answers the impact and writes
    nothing (no mapping, no job)."""
    import sqlalchemy as sa

    admin, viewer = _roles(sso_sdk, setup.org_id)
    result, _ = sign_in(sso_sdk, http, setup, ["Admins"])
    default = result.profile.role.slug
    wait_for(lambda: (m := _membership(sso_sdk, setup.org_id)) and m.role.slug == default)
    mappings = f"/connections/{setup.connection_id}/group_role_mappings"

    def jobs() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one())

    before = jobs()
    preview = http.post(
        mappings, params={"dry_run": "true"}, json={"group": "Admins", "role_slug": admin}
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["object"] == "dry_run"
    assert preview.json()["changes"] == 1
    assert preview.json()["transitions"] == [{"from": [default], "to": [admin], "count": 1}]
    assert http.get(mappings).json()["data"] == [] and jobs() == before

    created = _map(http, setup.connection_id, "Admins", admin)
    wait_for(lambda: _membership(sso_sdk, setup.org_id).role.slug == admin)
    path = f"{mappings}/{created['id']}"
    moved = http.put(path, params={"dry_run": "true"}, json={"role_slug": viewer})
    assert moved.status_code == 200, moved.text
    assert moved.json()["transitions"] == [{"from": [admin], "to": [viewer], "count": 1}]
    gone = http.delete(path, params={"dry_run": "true"})
    assert gone.status_code == 200, gone.text
    assert gone.json()["transitions"] == [{"from": [admin], "to": [default], "count": 1}]
    assert [m["role_slug"] for m in http.get(mappings).json()["data"]] == [admin]
    assert _membership(sso_sdk, setup.org_id).role.slug == admin


def test_workers_folding_at_once_take_different_sign_ins(
    sso_sdk, http, setup: Setup, engine
) -> None:
    """The login row is the sign-in task's message: two transactions taking pending rows at
    once (two workers) never take the same one, and a taken row is not taken again."""
    from sqlalchemy.orm import Session

    from idp_sync.sso.signin import process_login, take_pending_login

    sign_in(sso_sdk, http, setup, [])  # no worker: the sign-ins stay pending
    sign_in(sso_sdk, http, setup, [])
    with Session(engine) as first, Session(engine) as second:
        taken = take_pending_login(first)
        other = take_pending_login(second)
        assert taken is not None and other is not None
        assert taken[0] != other[0]
        assert process_login(first, taken[0]) == "done"
        first.commit()
        second.rollback()
    with Session(engine) as third:
        again = take_pending_login(third)
        assert again is not None and again[0] != taken[0]


def test_the_acs_resolves_as_the_worker_side_resolver_does(
    sso_sdk, http, setup: Setup, engine
) -> None:
    """The ACS reads a sign-in's inputs with its own statements; ``resolve_profiles`` (a
    role deletion's re-resolution) reads them with its own. On the same state both give
    the same roles: a user with an API role and a mapped group, one with an API role and
    no mapped group, a first sign-in with no user, and a known profile signing in again."""
    from sqlalchemy.orm import Session
    from workos.organization_membership._resource import RoleSingle

    from idp_sync.memberships.recompute import RoleCatalog
    from idp_sync.sso.models import SsoProfile
    from idp_sync.sso.signin import resolve_profiles

    admin, viewer = _roles(sso_sdk, setup.org_id)
    _map(http, setup.connection_id, "Admins", admin)
    emails = [f"{unique(n)}@example.com" for n in ("api-idp", "api-only", "new")]
    for email in emails[:2]:
        user = sso_sdk.user_management.create_user(email=email)
        sso_sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=setup.org_id, role=RoleSingle(role_slug=viewer)
        )
    signed_in = [
        sign_in(sso_sdk, http, setup, ["Admins"], name_id=emails[0])[0].profile,
        sign_in(sso_sdk, http, setup, ["Other"], name_id=emails[1])[0].profile,
        sign_in(sso_sdk, http, setup, ["Admins"], name_id=emails[2])[0].profile,
        sign_in(sso_sdk, http, setup, ["Other"], name_id=emails[0])[0].profile,  # again
    ]
    assert [[r.slug for r in p.roles or []] for p in signed_in] == [
        [admin],  # the IdP source beats the API role
        ["member"],  # an SSO source that maps nothing gives the default (DESIGN §3)
        [admin],
        ["member"],  # the mapped group gone: the default, not the API role
    ]
    assert signed_in[0].id == signed_in[3].id  # signing in again updates the profile
    with Session(engine) as session:
        profiles = [session.get(SsoProfile, p.id) for p in signed_in[1:]]
        found = [p for p in profiles if p is not None]
        assert len(found) == 3
        stored = [p.roles for p in found]
        again = resolve_profiles(session, found, RoleCatalog(session))
    assert again == stored == [[r.slug for r in p.roles or []] for p in signed_in[1:]]


def test_a_sign_in_survives_pooled_connections_the_server_closed(
    sso_sdk, http, setup: Setup, engine
) -> None:
    """The ACS checks a connection out without the pool's ping (its first statement is the
    ping): a connection the server closed (a restart, an idle timeout) is replaced, and
    the sign-in goes through rather than failing."""
    import sqlalchemy as sa

    from sso.sso_helpers import start_sign_in

    sign_in(sso_sdk, http, setup, [])  # the API's pool holds connections now
    request_id = start_sign_in(http, setup.connection_id)
    kill = sa.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with engine.connect() as conn:
        killed = int(conn.execute(kill).scalar_one())
    assert killed >= 1
    response = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    answer = post_acs(http, setup, response)
    assert answer.status_code == 302, answer.text


def test_the_acs_request_id_reaches_the_worker_that_folds_the_sign_in(
    http, setup: Setup, sso_worker, caplog
) -> None:
    """The login row is the worker's message, so it carries the ACS request's correlation
    id: the worker's lines about that sign-in have it."""
    import json
    import logging

    from idp_sync.logs import JsonFormatter
    from sso.sso_helpers import start_sign_in

    caplog.set_level(logging.INFO)
    request_id = start_sign_in(http, setup.connection_id)
    response = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    answer = http.post(
        f"/sso/saml/{setup.connection_id}/acs",
        data={"SAMLResponse": response},
        headers={"Authorization": "", "X-Request-Id": "acs-corr-7"},
        follow_redirects=False,
    )
    assert answer.status_code == 302, answer.text

    def folded() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.getMessage() == "sso sign-in folded"
            and json.loads(JsonFormatter().format(r)).get("correlation_id") == "acs-corr-7"
        ]

    lines = wait_for(folded)
    assert json.loads(JsonFormatter().format(lines[0]))["outcome"] == "done"


def test_a_returning_sign_in_runs_on_the_event_loop_and_gives_the_same_profile(
    sso_sdk, http, setup: Setup, engine
) -> None:
    """With the connection's settings and roles cached, a sign-in runs on the event loop
    (sso/acs_async.py), not in a thread; its profile, code and login row are those the
    threaded path makes."""
    import sqlalchemy as sa
    from prometheus_client import REGISTRY

    def runs(path: str) -> float:
        value = REGISTRY.get_sample_value("idp_sync_saml_signin_paths_total", {"path": path})
        return value or 0.0

    admin, _ = _roles(sso_sdk, setup.org_id)
    _map(http, setup.connection_id, "Admins", admin)
    first, _ = sign_in(sso_sdk, http, setup, ["Admins"])  # caches the settings
    # (and replaces pooled connections an earlier test's server-side kill left)
    sign_in(sso_sdk, http, setup, ["Admins"])
    before = runs("event_loop")
    again, _ = sign_in(sso_sdk, http, setup, ["Admins", "Other"])
    assert runs("event_loop") == before + 1
    assert again.profile.id == first.profile.id
    assert [r.slug for r in again.profile.roles or []] == [admin]
    assert again.profile.groups == ["Admins", "Other"]
    with engine.connect() as conn:
        logins = conn.execute(
            sa.text("SELECT count(*) FROM sso_login_events WHERE profile_id = :p"),
            {"p": first.profile.id},
        ).scalar_one()
        stored = conn.execute(
            sa.text("SELECT groups, roles FROM sso_profiles WHERE id = :p"),
            {"p": first.profile.id},
        ).one()
    assert logins == 3
    assert (stored.groups, stored.roles) == (["Admins", "Other"], [admin])
