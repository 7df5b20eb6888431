"""The embedded default (DESIGN §4): nothing configured -> SQLite for data, Celery's
SQLAlchemy transport on SQLite as the broker, a real worker in the same process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, serve, unique, wait_for
from idp_sync.config import Settings
from idp_sync.db import upgrade
from idp_sync.embedded import worker_and_beat
from idp_sync.runtime import Runtime
from idp_sync.tasks import create_celery_app

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def embedded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("DATABASE_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    values: dict[str, object] = {
        "IDP_SYNC_DATA_DIR": str(tmp_path / "data"),
        "IDP_SYNC_API_KEY": API_KEY,
        "IDP_SYNC_SWEEPER_THRESHOLD": 2.0,
        "IDP_SYNC_JOB_BATCH_SIZE": 2,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_nothing_configured_means_sqlite_and_the_sqla_broker(embedded_settings: Settings) -> None:
    data_dir = embedded_settings.data_dir.resolve()
    assert embedded_settings.is_embedded
    assert embedded_settings.effective_database_url == f"sqlite:///{data_dir / 'idp-sync.sqlite'}"
    assert embedded_settings.effective_broker_url == f"sqla+sqlite:///{data_dir / 'broker.sqlite'}"


def test_embedded_default_runs_a_job_on_a_real_worker(embedded_settings: Settings) -> None:
    data_dir = embedded_settings.data_dir.resolve()
    upgrade(embedded_settings.effective_database_url)
    assert (data_dir / "idp-sync.sqlite").is_file()

    runtime = Runtime(embedded_settings)
    app = create_celery_app(runtime=runtime)
    assert app.conf.broker_url.startswith("sqla+sqlite:///")
    assert app.conf.task_always_eager is False  # a real worker, not eager mode (DESIGN §4)
    live = serve(runtime)
    api = httpx.Client(base_url=live.url, headers=HEADERS, timeout=30)
    try:
        with worker_and_beat(app):
            staff = unique("staff")
            made = api.post("/authorization/roles", json={"slug": staff, "name": "Staff"})
            assert made.status_code == 201, made.text
            org = api.post("/organizations", json={"name": unique("Acme")}).json()
            members = []
            for _ in range(3):  # two batches of the configured size 2
                user = api.post(
                    "/user_management/users", json={"email": f"{unique('u')}@example.com"}
                ).json()
                member = api.post(
                    "/user_management/organization_memberships",
                    json={"user_id": user["id"], "organization_id": org["id"]},
                )
                assert member.status_code == 201, member.text
                assert member.json()["role"] == {"slug": "member"}
                members.append(member.json()["id"])

            changed = api.put("/authorization/settings", json={"default_role_slug": staff})
            assert changed.status_code == 202, changed.text
            job_id = changed.json()["job"]["id"]

            def finished() -> dict | None:
                job = api.get(f"/jobs/{job_id}").json()
                return job if job["state"] in ("succeeded", "failed") else None

            job = wait_for(finished, timeout=30)
            assert job["state"] == "succeeded", job
            assert job["progress"] == {"total": 3, "done": 3, "changed": 3}
            roles = {
                mid: api.get(f"/user_management/organization_memberships/{mid}").json()["role"]
                for mid in members
            }
            assert roles == {mid: {"slug": staff} for mid in members}
            events = api.get(
                "/events",
                params={"events": "organization_membership.updated", "organization_id": org["id"]},
            ).json()["data"]
            assert sorted(e["data"]["id"] for e in events) == sorted(members)
    finally:
        api.close()
        live.stop()
        runtime.dispose()
    assert (data_dir / "broker.sqlite").is_file()


def test_embedded_default_signs_in_through_the_acs_and_the_worker(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    """The ACS's Core statements (the replay insert, the profile upsert, the consumed
    AuthnRequest) and the sign-ins task on SQLite, with the SQLAlchemy broker."""
    from workos import WorkOSClient

    from conftest import free_port
    from sso.saml_idp import TestIdp
    from sso.sso_helpers import REDIRECT_URI, Setup, create_connection, post_acs, start_sign_in
    from sso.test_sso_flow import _map, sign_in

    port = free_port()
    settings = embedded_settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{port}",
            "client_id": "client_test",
            "redirect_uris": REDIRECT_URI,
        }
    )
    upgrade(settings.effective_database_url)
    runtime = Runtime(settings)
    app = create_celery_app(runtime=runtime)
    live = serve(runtime, port)
    api = httpx.Client(base_url=live.url, headers=HEADERS, timeout=30)
    sdk = WorkOSClient(api_key=API_KEY, client_id="client_test", base_url=live.url, max_retries=0)
    try:
        with worker_and_beat(app):
            idp = TestIdp()
            org = sdk.organizations.create_organization(name=unique("Sso"))
            connection = create_connection(sdk, idp, org.id)
            saml = api.get(f"/connections/{connection.id}").json()["saml"]
            setup = Setup(idp, org.id, connection.id, saml["acs_url"], saml["sp_entity_id"])
            admin = unique("org-admin")
            made = api.post(
                f"/authorization/organizations/{org.id}/roles", json={"slug": admin, "name": "A"}
            )
            assert made.status_code == 201, made.text
            _map(api, connection.id, "Admins", admin)
            first, _ = sign_in(sdk, api, setup, ["Admins"])
            assert first.profile.role.slug == admin
            again, _ = sign_in(sdk, api, setup, ["Other"])  # the same profile, updated
            assert again.profile.id == first.profile.id
            assert again.profile.role.slug == "member"

            def membership() -> dict | None:
                page = api.get(
                    "/user_management/organization_memberships", params={"organization_id": org.id}
                ).json()["data"]
                return page[0] if page and page[0]["role"]["slug"] == "member" else None

            assert wait_for(membership, timeout=30)["user"]["email"] == "ada@example.com"
            request_id = start_sign_in(api, connection.id)
            replayed = idp.response(
                acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
            )
            assert post_acs(api, setup, replayed).status_code == 302
            refused = post_acs(api, setup, replayed)
            assert (refused.status_code, refused.json()["code"]) == (400, "replayed")
    finally:
        api.close()
        live.stop()
        runtime.dispose()
