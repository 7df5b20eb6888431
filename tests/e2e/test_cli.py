"""The ``idp-sync`` command line on the embedded default, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import free_port, wait_for

CLI = [sys.executable, "-m", "idp_sync.cli"]


def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "BROKER_URL", "IDP_SYNC_"))
    }
    env["IDP_SYNC_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_db_upgrade_and_api_key_create(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    upgraded = subprocess.run(
        [*CLI, "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at head" in upgraded.stdout
    assert (tmp_path / "data" / "idp-sync.sqlite").exists()
    created = subprocess.run(
        [*CLI, "api-key", "create", "--name", "ci"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk_idp_") and len(key) > 40
    # Only its hash is stored.
    assert key.encode() not in (tmp_path / "data" / "idp-sync.sqlite").read_bytes()


def test_demo_runs_the_whole_flow(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "demo"],
        env=embedded_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo finished" in result.stdout
    assert "succeeded" in result.stdout
    assert "organization_membership.updated" in result.stdout


def test_dev_serves_the_api_with_an_in_process_worker(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    created = subprocess.run(
        [*CLI, "api-key", "create"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = created.stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    assert key.startswith("sk_idp_")
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # stop waiting if it died

        wait_for(ready, timeout=60, interval=0.25)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        refused = httpx.get(f"{base}/authorization/roles", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        role = httpx.post(
            f"{base}/authorization/roles",
            json={"slug": "dev-viewer", "name": "Viewer"},
            headers=headers,
        )
        assert role.status_code == 201, role.text
        answer = httpx.put(
            f"{base}/authorization/settings",
            json={"default_role_slug": "dev-viewer"},
            headers=headers,
        )
        assert answer.status_code == 202
        job_id = answer.json()["job"]["id"]
        job = wait_for(
            lambda: (
                (j := httpx.get(f"{base}/jobs/{job_id}", headers=headers).json())["state"]
                == "succeeded"
                and j
            ),
            timeout=60,
        )
        assert job["state"] == "succeeded"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
