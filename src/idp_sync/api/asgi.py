"""ASGI entry point for servers (``uvicorn idp_sync.api.asgi:app``); settings from env."""

from idp_sync.api.app import create_app

app = create_app()
