"""Fixtures for Directory Sync tests, registered with ``pytest_plugins = ["dsync_fixtures"]``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dsync_helpers import HEADERS, make_directory, scim_client


@pytest.fixture
def api(live) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, headers=HEADERS, timeout=30) as client:
        yield client


@pytest.fixture
def directory(api: httpx.Client) -> dict[str, Any]:
    return make_directory(api)


@pytest.fixture
def scim(directory: dict[str, Any]) -> Iterator[httpx.Client]:
    with scim_client(directory) as client:
        yield client
