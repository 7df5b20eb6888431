"""The ``idp-sync`` command line (DESIGN §5)."""

from __future__ import annotations

import sys

import click

from idp_sync.config import get_settings
from idp_sync.runtime import Runtime

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _logging() -> None:
    from idp_sync.logs import configure

    settings = get_settings()
    configure(settings.log_level, settings.log_format)


@click.group()
def main() -> None:
    """idp-sync: self-hosted RBAC, directory sync and SSO role assignment."""


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (the only way the schema is created)."""
    from idp_sync.db import upgrade

    settings = get_settings()
    settings.ensure_data_dir()
    upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}")


@main.group("api-key")
def api_key() -> None:
    """API key commands."""


@api_key.command("create")
@click.option("--name", default="default", show_default=True)
def api_key_create(name: str) -> None:
    """Create an API key and print it (shown once; only its hash is stored)."""
    from idp_sync.auth.services import create_api_key

    runtime = Runtime()
    _migrate_if_embedded(runtime)
    with runtime.transaction() as session:
        key, raw = create_api_key(session, name)
    click.echo(raw)
    click.echo(f"created {key.id} ({name}); store it now, it is not shown again", err=True)


def _migrate_if_embedded(runtime: Runtime) -> None:
    if runtime.settings.is_embedded:
        from idp_sync.db import upgrade

        runtime.settings.ensure_data_dir()
        upgrade(runtime.settings.effective_database_url)


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def api(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (management API, events, jobs, operations)."""
    import uvicorn

    _logging()
    _migrate_if_embedded(Runtime())
    uvicorn.run(
        "idp_sync.api.asgi:app",
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=True,
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("-Q", "--queues", default="sync,bulk,webhooks,maintenance", show_default=True)
@click.option("-c", "--concurrency", default=2, show_default=True, type=int)
@click.pass_context
def worker(ctx: click.Context, queues: str, concurrency: int) -> None:
    """Run a Celery worker (thread pool, prefetch 1, late acks; -P prefork to change)."""
    from workers.celery_app import app

    _logging()
    # Celery sets the root level from its own -l (WARNING by default), which would hide
    # the INFO records IDP_SYNC_LOG_LEVEL asks for; a -l given here still wins.
    level = ["-l", get_settings().log_level.upper()]
    argv = ["worker", "-Q", queues, "-c", str(concurrency), "-P", "threads", *level, *ctx.args]
    app.worker_main(argv)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run Celery beat (the outbox sweeper and other periodic work)."""
    from workers.celery_app import app

    _logging()
    schedule = str((get_settings().data_dir / "beat-schedule").resolve())
    get_settings().ensure_data_dir()
    level = ["-l", get_settings().log_level.upper()]  # as for the worker
    app.start(["beat", f"--schedule={schedule}", *level, *ctx.args])


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--port", default=5555, show_default=True, type=int)
@click.pass_context
def flower(ctx: click.Context, port: int) -> None:
    """Run Flower, the Celery monitor, on the same broker."""
    from workers.celery_app import app

    app.start(["flower", f"--port={port}", *ctx.args])


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
def dev(host: str, port: int) -> None:
    """API plus an in-process Celery worker and beat on the embedded default."""
    import uvicorn

    from idp_sync.api.app import create_app
    from idp_sync.embedded import worker_and_beat

    _logging()
    runtime = Runtime()
    _migrate_if_embedded(runtime)
    app = create_app(runtime=runtime)
    assert runtime.celery is not None
    if not runtime.settings.api_key:
        click.echo("note: IDP_SYNC_API_KEY is not set; create a key with `idp-sync api-key create`")
    with worker_and_beat(runtime.celery):
        uvicorn.run(app, host=host, port=port, access_log=False)


@main.command()
def demo() -> None:
    """Show the whole flow on the embedded default in well under a minute."""
    from idp_sync.demo import run_demo

    sys.exit(run_demo())


if __name__ == "__main__":  # pragma: no cover
    main()
