"""Two sync tasks folding different events about one new directory user at once (its
creation, and a group push naming it) link it to one user: the second waits for the
first's lock on the directory user, then sees its link (PostgreSQL, two transactions)."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from dsync_helpers import create_group, create_user, make_directory, scim_client
from sqlalchemy.orm import Session

from conftest import unique
from idp_sync.directory import sync

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim


def test_concurrent_tasks_link_a_new_directory_user_once(live, api, engine) -> None:  # type: ignore[no-untyped-def]
    directory = make_directory(api)  # no worker: the events stay pending
    email = f"{unique('race')}@example.com"
    with scim_client(directory) as scim:
        user = create_user(scim, email)
        create_group(scim, unique("Team"), [user["id"]])
    with engine.connect() as conn:
        events = (
            conn.execute(
                sa.text("SELECT id FROM directory_events WHERE directory_id = :d ORDER BY id"),
                {"d": directory["id"]},
            )
            .scalars()
            .all()
        )
    assert len(events) >= 2  # the user's creation, the group's (naming the user)

    first = Session(engine)
    second = Session(engine)
    errors: list[BaseException] = []
    try:
        # The second task holds the newest event (as a worker that claimed it would); the
        # first folds the rest (SKIP LOCKED), linking the new user, and does not commit yet.
        second.execute(
            sa.text("SELECT id FROM directory_events WHERE id = :e FOR UPDATE"), {"e": events[-1]}
        )
        assert sync.process_pending(first, events[0]) is not None

        def run_second() -> None:
            try:
                sync.process_pending(second, events[-1])
                second.commit()
            except BaseException as exc:
                errors.append(exc)
                second.rollback()

        racer = threading.Thread(target=run_second)
        racer.start()
        racer.join(1.0)  # it now waits on the first task's locks
        first.commit()
        racer.join(30)
        assert not racer.is_alive()
    finally:
        first.close()
        second.close()
    assert errors == []
    with engine.connect() as conn:
        users = conn.execute(
            sa.text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}
        ).scalar_one()
        memberships = conn.execute(
            sa.text(
                "SELECT count(*) FROM organization_memberships om JOIN users u "
                "ON u.id = om.user_id WHERE u.email = :e"
            ),
            {"e": email},
        ).scalar_one()
        linked = conn.execute(
            sa.text("SELECT user_id FROM directory_users WHERE id = :i"), {"i": user["id"]}
        ).scalar_one()
    assert (users, memberships) == (1, 1)
    assert linked is not None
