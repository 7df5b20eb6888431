"""Processes and HTTP calls of bench/scim.py: scim2-server in its own virtualenv, the
Celery worker, a blocking JSON client, and the load generator (``_scim_load.py``).

scim2-server 0.8.3 pins a newer pydantic than the service does, so it lives in
``.bench/scim2-server-venv`` (gitignored), created on first use with the ordinary
``venv`` + ``pip`` and reused afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_http import Server, Worker, free_port, start_worker

BENCH_DIR = Path(__file__).resolve().parent
SCIM2_SERVER = "scim2-server==0.8.3"
SCIM2_VENV = BENCH_DIR.parent / ".bench" / "scim2-server-venv"
SCIM_JSON = "application/scim+json"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def user_body(name: str) -> dict[str, Any]:
    """What Okta sends on user creation, less the password."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "name": {"givenName": "Bench", "familyName": name.split("@")[0]},
        "emails": [{"primary": True, "value": name, "type": "work"}],
        "displayName": f"Bench {name.split('@')[0]}",
        "active": True,
    }


def add_members(user_ids: list[str]) -> dict[str, Any]:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": u} for u in user_ids]}],
    }


def ensure_scim2_server() -> Path:
    """The ``scim2-server`` command of the bench's own virtualenv, installed if missing."""
    command = SCIM2_VENV / "bin" / "scim2-server"
    if command.exists():
        return command
    SCIM2_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(SCIM2_VENV)], check=True)
    pip = [str(SCIM2_VENV / "bin" / "pip"), "install", "-q", SCIM2_SERVER]
    subprocess.run(pip, check=True)
    return command


def start_scim2_server(tmp: Path, token: str) -> Server:
    """scim2-server's own command (``wsgiref`` threading server, in-memory storage)."""
    command = ensure_scim2_server()
    port = free_port()
    log = tmp / "scim2-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(command), "--port", str(port), "--bearer-token", token],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(tmp),
        )
    server = Server("scim2-server", port, proc, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            status, _ = Http(port, token).call("GET", "/v2/ServiceProviderConfig")
            if status == 200:
                return server
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"scim2-server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def start_scim_worker(env: dict[str, str], tmp: Path) -> Worker:
    """``idp-sync worker -Q sync,bulk`` as deployed (thread pool of 2), once ready."""
    return start_worker(env, tmp, "worker", "-Q", "sync,bulk")


class Http:
    """Blocking JSON calls on one connection (set-up and checks, not measurements)."""

    def __init__(self, port: int, token: str, timeout: float = 600) -> None:
        self.port, self.timeout = port, timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers=self.headers)
            answer = conn.getresponse()
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else {}
        finally:
            conn.close()

    def ok(self, method: str, path: str, body: object = None) -> Any:
        status, answer = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {str(answer)[:500]}")
        return answer


@dataclass
class Load:
    """One run of the load generator."""

    requests: int
    bad: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: list[str]
    done: list[tuple[int, float]]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(
    tmp: Path,
    port: int,
    token: str,
    requests: list[tuple[str, str, Any]],
    *,
    mode: str = "seq",
    seconds: float = 3600,
    connections: int = 8,
    cap: int = 0,
    rate: float = 0,
    record: bool = False,
    background: bool = False,
) -> Load | subprocess.Popen[str]:
    """Run ``_scim_load.py`` on ``requests`` (see its docstring for the modes)."""
    stamp = f"{time.monotonic_ns()}"
    req_file = tmp / f"requests-{stamp}.jsonl"
    req_file.write_text("".join(json.dumps(r) + "\n" for r in requests))
    spec = {
        "port": port,
        "token": token,
        "requests": str(req_file),
        "mode": mode,
        "seconds": seconds,
        "connections": connections,
        "cap": cap,
        "rate": rate,
        "record": record,
    }
    spec_file = tmp / f"spec-{stamp}.json"
    spec_file.write_text(json.dumps(spec))
    cmd = [sys.executable, str(BENCH_DIR / "_scim_load.py"), str(spec_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if background:
        return proc
    return finish(proc, seconds)


def finish(proc: subprocess.Popen[str], seconds: float) -> Load:
    try:
        out, err = proc.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {err[-3000:]}")
    data = json.loads(out.strip().splitlines()[-1])
    done = [(int(i), float(t)) for i, t in data.get("done", [])]
    return Load(
        data["requests"],
        data["bad"],
        data["seconds"],
        data["p50_ms"],
        data["p99_ms"],
        data["errors"],
        done,
    )


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
