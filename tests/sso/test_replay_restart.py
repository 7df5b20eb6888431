"""The replay cache is a database table: a replay is refused by a freshly started API
process too (DESIGN §4 and §7)."""

from __future__ import annotations

import httpx

from conftest import free_port, serve
from idp_sync.runtime import Runtime
from sso.sso_helpers import (
    Setup,
    counts,
    events_of,
    post_acs,
    start_sign_in,
)


def test_replay_is_refused_after_a_restart(sso_live, http, setup: Setup, engine) -> None:
    request_id = start_sign_in(http, setup.connection_id)
    response = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    assert post_acs(http, setup, response).status_code == 302

    restarted = serve(Runtime(sso_live.runtime.settings), free_port())  # new engine, new app
    try:
        before = counts(engine)
        with httpx.Client(base_url=restarted.url, timeout=20) as fresh:
            replay = post_acs(fresh, setup, response)
        assert replay.status_code == 400
        assert replay.json()["code"] == "replayed"
        assert counts(engine) == before
        failed = events_of(engine, "authentication.sso_failed", setup.connection_id)
        assert failed[-1]["error"]["code"] == "replayed"
    finally:
        restarted.stop()
        restarted.runtime.dispose()
