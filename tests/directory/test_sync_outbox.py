"""A directory sync task marks its outbox message completed in its own transaction: once
the worker has synced, no sync message is left pending (the sweeper would republish it).

Only the unit of work writes outbox rows for directory events (the event-loop paths'
events are drained without one: ``test_scim_event_loop.py``), so these requests are kept
off the event loop."""

from __future__ import annotations

import sqlalchemy as sa
from dsync_helpers import create_group, create_user, make_directory, scim_client

from conftest import unique, wait_for
from idp_sync.directory.scim.routing import KNOWN_DIRECTORIES

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim


def _sync_messages(engine, directory_id: str) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    query = sa.text(
        "SELECT o.id, o.completed_at FROM outbox_messages o "
        "JOIN directory_events e ON e.id = o.kwargs->>'event_id' "
        "WHERE o.task_name = 'idp_sync.directory.sync' AND e.directory_id = :d"
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query, {"d": directory_id})]


def test_sync_tasks_complete_their_outbox_messages(live, worker, api, engine) -> None:  # type: ignore[no-untyped-def]
    directory = make_directory(api)
    with scim_client(directory) as scim:
        users = []
        for _ in range(3):
            KNOWN_DIRECTORIES.pop(directory["id"], None)  # the unit of work, not the loop
            users.append(create_user(scim, f"{unique('ob')}@example.com"))
        create_group(scim, unique("Team"), [u["id"] for u in users])
    messages = wait_for(
        lambda: (m := _sync_messages(engine, directory["id"])) and len(m) >= 4 and m
    )
    assert len(messages) >= 4  # three users and the group, each with its sync message

    def all_completed() -> bool:
        return all(done is not None for _, done in _sync_messages(engine, directory["id"]))

    wait_for(all_completed, timeout=30)
    with engine.connect() as conn:
        pending = conn.execute(
            sa.text(
                "SELECT count(*) FROM directory_events WHERE directory_id = :d "
                "AND processed_at IS NULL"
            ),
            {"d": directory["id"]},
        ).scalar_one()
    assert pending == 0
