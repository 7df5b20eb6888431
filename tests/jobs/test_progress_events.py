"""Issue 7 point 4 / issue 6 point 1: a job reports its progress as Celery task events
(``task-progress``, what Flower shows of a running task), batch by batch."""

from __future__ import annotations

import threading

import httpx

from conftest import API_KEY, unique, wait_for

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_a_job_sends_task_progress_events(live, worker, sdk) -> None:  # type: ignore[no-untyped-def]
    app = live.runtime.celery
    seen: list[dict[str, object]] = []
    ready = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"task-progress": seen.append}, app=app)
            ready.set()
            for _ in receiver.itercapture(limit=None, timeout=1.0, wakeup=True):
                if stop.is_set():
                    return

    def run_listener() -> None:
        while not stop.is_set():
            try:
                listen()
            except TimeoutError:  # no event within the timeout: listen again
                continue
            except OSError:
                continue

    listener = threading.Thread(target=run_listener, daemon=True)
    listener.start()
    assert ready.wait(10)

    org = sdk.organizations.create_organization(name=unique("Progress"))
    for _ in range(3):
        user = sdk.user_management.create_user(email=f"{unique('p')}@example.com")
        sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id
        )
    role = sdk.authorization.create_organization_role(org.id, name="Next")
    answer = httpx.put(
        f"{live.url}/organizations/{org.id}/authorization_settings",
        json={"default_role_slug": role.slug},
        headers=HEADERS,
    )
    job_id = answer.json()["job"]["id"]
    try:
        mine = wait_for(
            lambda: [e for e in seen if e.get("job_id") == job_id and e.get("done") == 3],
            timeout=30,
        )
    finally:
        stop.set()
    assert mine[-1]["total"] == 3 and mine[-1]["changed"] == 3
    assert mine[-1]["type"] == "task-progress" and mine[-1]["uuid"]
