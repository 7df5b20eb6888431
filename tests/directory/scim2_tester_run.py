"""Run scim2-tester (python-scim's conformance checker) against a running idp-sync.

Not collected by pytest (scim2-tester needs its own environment: it pins newer
pydantic-based models than the service's). See docs/scim.md for the commands and results.

    python tests/directory/scim2_tester_run.py http://127.0.0.1:8765 <api key>
"""

from __future__ import annotations

import sys
from collections import Counter

import httpx
import httpx2  # type: ignore[import-not-found]
from scim2_client.engines.httpx2 import SyncSCIMClient  # type: ignore[import-not-found]
from scim2_tester import Status, check_server  # type: ignore[import-not-found]


def main(base_url: str, api_key: str) -> int:
    api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"})
    org = api.post("/organizations", json={"name": "scim2-tester"}).json()
    directory = api.post(
        "/directories",
        json={"organization_id": org["id"], "name": "scim2-tester", "type": "generic scim v2.0"},
    ).json()
    scim = httpx2.Client(
        base_url=directory["scim"]["base_url"],
        headers={"Authorization": f"Bearer {directory['scim']['bearer_token']}"},
    )
    client = SyncSCIMClient(scim)
    client.discover()
    results = check_server(client)
    for result in results:
        if result.status != Status.SUCCESS:
            print(f"{result.status.name:8} {result.title}: {result.reason}"[:300])
    print(dict(Counter(r.status.name for r in results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
