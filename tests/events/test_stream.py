"""Issue 7 point 1: the event stream has no gaps, even when transactions commit out of order,
and within one object the events follow the order of the changes."""

from __future__ import annotations

import itertools
import threading

import httpx
from sqlalchemy.orm import Session
from workos.organization_membership._resource import RoleSingle

from conftest import API_KEY, unique
from idp_sync.events.services import record_event

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _poll(live, org_id: str, after: str | None) -> list[dict]:
    params = {"organization_id": org_id, "limit": 100}
    if after:
        params["after"] = after
    answer = httpx.get(f"{live.url}/events", params=params, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_a_poller_never_misses_an_event_committed_late(live, engine) -> None:
    org_id = unique("org_stream")
    slow = Session(engine)
    fast = Session(engine)
    try:
        early = record_event(slow, "organization.updated", {"n": 1}, organization_id=org_id)
        slow.flush()  # written (and its id taken) first, committed last
        late = record_event(fast, "organization.updated", {"n": 2}, organization_id=org_id)
        fast.commit()
        assert early.id < late.id

        seen = _poll(live, org_id, None)
        assert [e["id"] for e in seen] == [late.id]

        slow.commit()
        more = _poll(live, org_id, seen[-1]["id"])
        assert [e["id"] for e in more] == [early.id]
        assert _poll(live, org_id, more[-1]["id"]) == []
    finally:
        slow.close()
        fast.close()


def test_cursor_of_an_unknown_event_is_a_422(live) -> None:
    answer = httpx.get(f"{live.url}/events", params={"after": "nope"}, headers=HEADERS)
    assert answer.status_code == 422


def test_events_of_one_membership_follow_the_order_of_its_changes(live, sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Order"))
    roles = [
        sdk.authorization.create_environment_role(slug=unique(f"r{i}"), name=f"R{i}").slug
        for i in range(4)
    ]
    user = sdk.user_management.create_user(email=f"{unique('o')}@example.com")
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )

    def flip(offset: int) -> None:
        for i in range(12):
            sdk.organization_membership.update_organization_membership(
                membership.id, role=RoleSingle(role_slug=roles[(i + offset) % len(roles)])
            )

    threads = [threading.Thread(target=flip, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    final = sdk.organization_membership.get_organization_membership(membership.id)
    stream = [
        e
        for e in sdk.events.list_events(
            events=["organization_membership.updated"], organization_id=org.id, limit=100
        ).auto_paging_iter()
    ]
    assert stream, "no updates were recorded"
    stamps = [e.data.updated_at for e in stream]
    assert stamps == sorted(stamps)  # stream order = order of the changes
    assert stream[-1].data.role.slug == final.role.slug  # the last event is the final state
    for before, after in itertools.pairwise(stream):
        assert before.data.role.slug != after.data.role.slug  # each event is a real change
