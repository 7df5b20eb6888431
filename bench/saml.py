"""SAML sign-in benchmark (issue 5 point 6): ACS sign-ins per second through the whole path,
as a ratio to python3-saml's bare ``is_valid`` on the same responses, in the same run.

Usage: python bench/saml.py [--quick] [--per-round N] [--users N] [--connections N]
       [--idp-initiated]

What it does:

* creates a fresh PostgreSQL database (``idp_sync_bench_<pid>_<hex>``), migrates it, and
  starts the API as a uvicorn subprocess (``bench_http.start_server``: one worker,
  uvloop + httptools when installed, no access log) with a client id, a registered
  redirect URI and a unique Redis broker key prefix;
* through the API: an organization, two organization roles, a connection (``OktaSAML``)
  trusting a throwaway IdP (``tests/sso/saml_idp.py``: a fresh RSA-2048 key and
  self-signed certificate, RSA-SHA256 signed assertions) and two group-to-role mappings,
  so that every sign-in resolves its role from its groups;
* the realistic path is SP-initiated (the WorkOS flow): one AuthnRequest per response is
  created beforehand through ``GET /sso/authorize`` (each answered 302 with its
  RelayState), and each response answers one of them (``InResponseTo``).
  ``--idp-initiated`` allows IdP-initiated sign-ins on the connection and sends
  responses without ``InResponseTo`` instead;
* pre-generates every response of the run, each with its own assertion id (replays are
  refused), for ``--users`` distinct users with groups that map to the roles;
* warm-up: one sign-in per user through the ACS, then the worker's task body
  (``signin.process_login``) is run in-process for those sign-ins, so that the measured
  rounds are returning users who have a user and a membership (the common case); then
  ``VACUUM ANALYZE`` and autovacuum off for the bench database's tables;
* 3 rounds, each: (a) the baseline: ``OneLogin_Saml2_Response(settings, b64)
  .is_valid(request_data)`` over the round's responses in a loop, in this process, strict
  mode, with the connection's own python3-saml settings (``saml.onelogin_settings``);
  (b) the same responses POSTed once each to ``/sso/saml/{id}/acs`` by a load generator
  subprocess (asyncio, ``--connections`` keep-alive connections). Every POST must answer
  302 to the redirect URI with a code; anything else is counted and invalidates the
  result;
* prints baseline validations/s, sign-ins/s, their ratio (median rounds) against the
  target (>= 0.6), latencies, and the load average before and after; stops the server,
  drops the database and deletes the broker keys. Reports only: exits 0 unless setup
  failed.

The baseline runs on one core with nothing else busy; the sign-ins share the 2 cores
between uvicorn, PostgreSQL and the load generator, and include what the baseline does not
(HTTP, our own checks, the replay table, the AuthnRequest, the profile, role resolution,
the login row, the code, the commit, the request for the worker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
sys.path.insert(0, str(BENCH_DIR))

from bench_http import (  # noqa: E402
    REDIS_URL,
    Server,
    bench_database,
    loadavg,
    settle,
    start_server,
    stop_all,
    uvicorn_flags,
)

TARGET = 0.6
ROUNDS = 3
CLIENT_ID = "client_bench"
REDIRECT_URI = "https://app.bench/callback"
GROUPS = (["Engineering", "Everyone"], ["Admins", "Everyone"], ["Everyone"])


# --- the API, as a client -------------------------------------------------------------


class Api:
    """A keep-alive HTTP/1.1 client of the API under test (setup only, not measured)."""

    def __init__(self, port: int, api_key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.auth = {"Authorization": f"Bearer {api_key}"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {**self.auth, "Content-Type": "application/json"}
        self.conn.request(method, path, json.dumps(body) if body else None, headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:500]!r}")
        return json.loads(data) if data else None

    def authorize(self, connection_id: str, state: str) -> str:
        """``GET /sso/authorize`` -> the new AuthnRequest's id (the RelayState)."""
        query = f"connection={connection_id}&client_id={CLIENT_ID}&response_type=code"
        query += f"&redirect_uri={quote(REDIRECT_URI, safe='')}&state={state}"
        self.conn.request("GET", f"/sso/authorize?{query}")
        response = self.conn.getresponse()
        response.read()
        if response.status != 302:
            raise RuntimeError(f"/sso/authorize answered {response.status}")
        location = response.getheader("location") or ""
        return parse_qs(urlsplit(location).query)["RelayState"][0]

    def close(self) -> None:
        self.conn.close()


@dataclass
class Target:
    """The connection under test, as the IdP and the baseline see it."""

    connection_id: str
    organization_id: str
    acs_url: str
    sp_entity_id: str


def create_connection(api: Api, idp: Any, idp_initiated: bool) -> Target:
    """Organization, roles, connection trusting ``idp``, group-to-role mappings."""
    org = api.call("POST", "/organizations", {"name": f"SAML bench {uuid.uuid4().hex[:6]}"})
    for slug in ("org-bench-admin", "org-bench-engineer"):
        api.call(
            "POST",
            f"/authorization/organizations/{org['id']}/roles",
            {"slug": slug, "name": slug.title()},
        )
    options = {
        "idp_entity_id": idp.entity_id,
        "idp_sso_url": idp.sso_url,
        "idp_signing_certs": [idp.cert],
        "allow_idp_initiated": idp_initiated,
    }
    body = {"organization_id": org["id"], "connection_type": "OktaSAML", "saml_options": options}
    connection = api.call("POST", "/connections", {**body, "name": "Bench IdP"})
    mappings = f"/connections/{connection['id']}/group_role_mappings"
    api.call("POST", mappings, {"group": "Admins", "role_slug": "org-bench-admin"})
    api.call("POST", mappings, {"group": "Engineering", "role_slug": "org-bench-engineer"})
    saml = api.call("GET", f"/connections/{connection['id']}")
    if saml["state"] != "active":
        raise RuntimeError(f"connection is {saml['state']}, not active")
    return Target(
        connection["id"], org["id"], saml["saml"]["acs_url"], saml["saml"]["sp_entity_id"]
    )


# --- responses ------------------------------------------------------------------------


@dataclass
class Batch:
    """Responses of one round: base64 for the baseline, form bodies for the ACS."""

    encoded: list[str] = field(default_factory=list)

    def bodies(self) -> list[str]:
        return ["SAMLResponse=" + quote(b64, safe="") for b64 in self.encoded]


def make_batches(
    idp: Any, target: Target, sizes: list[int], users: int, relay_ids: list[str | None]
) -> list[Batch]:
    """Signed responses, each with its own assertion id, for users taken in turn."""
    import datetime as dt

    batches, i = [], 0
    for size in sizes:
        batch = Batch()
        for _ in range(size):
            user = i % users
            batch.encoded.append(
                idp.response(
                    acs_url=target.acs_url,
                    audience=target.sp_entity_id,
                    name_id=f"bench-{user}@example.com",
                    groups=GROUPS[user % len(GROUPS)],
                    in_response_to=relay_ids[i],
                    lifetime=dt.timedelta(minutes=30),
                )
            )
            i += 1
        batches.append(batch)
    return batches


# --- baseline and load ----------------------------------------------------------------


def baseline(target: Target, idp: Any, batch: Batch) -> tuple[float, float]:
    """python3-saml's bare strict ``is_valid`` over ``batch``, in this process: validations
    per second, and CPU ms per validation."""
    from onelogin.saml2.response import OneLogin_Saml2_Response

    settings, request_data = _onelogin(target, idp)
    start, cpu = time.perf_counter(), time.process_time()
    for b64 in batch.encoded:
        if not OneLogin_Saml2_Response(settings, b64).is_valid(request_data):
            raise RuntimeError("the baseline refused a response: the comparison is void")
    count = len(batch.encoded)
    return count / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / count


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _onelogin(target: Target, idp: Any) -> tuple[Any, dict[str, Any]]:
    from idp_sync.sso import saml

    sp = saml.SpConfig(
        sp_entity_id=target.sp_entity_id,
        acs_url=target.acs_url,
        idp_entity_id=idp.entity_id,
        idp_sso_url=idp.sso_url,
        certs=(idp.cert.strip(),),
    )
    return saml.onelogin_settings(sp), saml.request_data(target.acs_url)


@dataclass
class Load:
    requests: int
    bad: int
    seconds: float
    p50_ms: float
    p99_ms: float
    sample: str
    api_cpu_ms: float = 0.0  # CPU of the API process per request

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def post_all(port: int, target: Target, batch: Batch, connections: int, tmp: Path) -> Load:
    """POST every body of ``batch`` once to the ACS, in a load generator subprocess."""
    items = tmp / f"bodies-{uuid.uuid4().hex[:6]}.txt"
    items.write_text("\n".join(batch.bodies()) + "\n")
    spec = {
        "port": port,
        "path": f"/sso/saml/{target.connection_id}/acs",
        "items": str(items),
        "connections": connections,
        "expect": REDIRECT_URI + "?code=",
    }
    cmd = [sys.executable, __file__, "--_client", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    items.unlink()
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Load(**data)


def client_main(spec: dict[str, Any]) -> None:
    """The load generator: asyncio, raw HTTP/1.1 over keep-alive connections; each body is
    sent once; only a 302 to the redirect URI with a code counts as a sign-in."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    bodies = [ln.encode() for ln in Path(spec["items"]).read_text().splitlines() if ln]
    port, path = int(spec["port"]), str(spec["path"])
    expect = ("location: " + spec["expect"]).encode().lower()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nUser-Agent: bench-saml\r\n"
    ).encode()
    state: dict[str, Any] = {"next": 0, "ok": 0, "bad": 0, "sample": ""}
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while state["next"] < len(bodies):
                body = bodies[state["next"]]
                state["next"] += 1
                t0 = time.perf_counter()
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in answer.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                payload = await reader.readexactly(length) if length else b""
                latencies.append(time.perf_counter() - t0)
                if answer.startswith(b"HTTP/1.1 302") and expect in answer.lower():
                    state["ok"] += 1
                else:
                    state["bad"] += 1
                    state["sample"] = state["sample"] or (answer + payload)[:300].decode()
        finally:
            writer.close()

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(int(spec["connections"]))))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    result = {
        "requests": state["ok"] + state["bad"],
        "bad": state["bad"],
        "seconds": elapsed,
        "p50_ms": pick(0.5) if latencies else 0.0,
        "p99_ms": pick(0.99) if latencies else 0.0,
        "sample": state["sample"],
    }
    print(json.dumps(result))


# --- warm-up --------------------------------------------------------------------------


def fold_sign_ins(url: str, tmp: Path) -> int:
    """Run the worker's task body for every pending sign-in, as the worker would: users
    and memberships exist afterwards. Returns how many were folded in."""
    from sqlalchemy import select

    from idp_sync.config import Settings
    from idp_sync.runtime import Runtime
    from idp_sync.sso.models import SsoLoginEvent
    from idp_sync.sso.signin import process_login

    runtime = Runtime(Settings(DATABASE_URL=url, IDP_SYNC_DATA_DIR=str(tmp / "fold")))
    try:
        with runtime.transaction() as session:
            pending = session.scalars(
                select(SsoLoginEvent.id).where(SsoLoginEvent.processed_at.is_(None))
            ).all()
        for login_id in pending:
            with runtime.transaction() as session:
                process_login(session, login_id)
        return len(pending)
    finally:
        runtime.dispose()


# --- main -----------------------------------------------------------------------------


def describe(loads: list[Load]) -> str:
    med = sorted(loads, key=lambda r: r.rate)[len(loads) // 2]
    text = f"rounds {' / '.join(f'{x.rate:,.0f}' for x in loads)}; "
    text += f"p50 {med.p50_ms:.1f} ms, p99 {med.p99_ms:.1f} ms"
    bad = sum(x.bad for x in loads)
    if bad:
        sample = next(x.sample for x in loads if x.sample)
        text += f"; {bad} FAILED POSTS (result invalid), e.g. {sample!r}"
    return text


def run(args: argparse.Namespace, tmp: Path, prefix: str, servers: list[Server]) -> None:
    from idp_sync.db import upgrade
    from sso.saml_idp import TestIdp

    api_key = f"sk_bench_{uuid.uuid4().hex}"
    with bench_database() as url:
        t0 = time.perf_counter()
        upgrade(url)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
        env.update(
            DATABASE_URL=url,
            BROKER_URL=REDIS_URL,
            IDP_SYNC_API_KEY=api_key,
            IDP_SYNC_BROKER_KEY_PREFIX=prefix,
            IDP_SYNC_DATA_DIR=str(tmp / "data"),
            IDP_SYNC_CLIENT_ID=CLIENT_ID,
            IDP_SYNC_REDIRECT_URIS=REDIRECT_URI,
        )
        server = start_server(
            "idp-sync", ["--factory", "idp_sync.api.app:create_app"], env, tmp, "/healthz", {}
        )
        servers.append(server)
        api = Api(server.port, api_key)
        idp = TestIdp()
        target = create_connection(api, idp, args.idp_initiated)
        sizes = [args.users] + [args.per_round] * ROUNDS
        total = sum(sizes)
        relay_ids: list[str | None] = (
            [None] * total
            if args.idp_initiated
            else [api.authorize(target.connection_id, f"st{i}") for i in range(total)]
        )
        api.close()
        batches = make_batches(idp, target, sizes, args.users, relay_ids)
        print(
            f"setup: migrated; connection, {total:,} AuthnRequests "
            f"({'IdP-initiated: none' if args.idp_initiated else 'SP-initiated'}) and "
            f"{total:,} signed responses for {args.users} users in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        warm = post_all(server.port, target, batches[0], args.connections, tmp)
        if warm.bad:
            raise RuntimeError(f"warm-up: {warm.bad} failed posts, e.g. {warm.sample!r}")
        folded = fold_sign_ins(url, tmp)
        settle(url)
        baseline(target, idp, batches[0])  # warm the baseline's imports and caches
        print(
            f"warm-up: {warm.requests} first sign-ins, {folded} folded into users and "
            "memberships by the task body; VACUUM ANALYZE, autovacuum off",
            flush=True,
        )
        _, loop_http = uvicorn_flags()
        print(f"load average before: {loadavg()} ({os.cpu_count()} cores, shared)", flush=True)
        print(
            f"load: asyncio client, {args.connections} keep-alive connections, every response "
            f"POSTed once; uvicorn 1 worker, {loop_http}, no access log; {ROUNDS} rounds x "
            f"{args.per_round:,} responses, baseline then ACS in each round, median round",
            flush=True,
        )
        base_rates, base_cpu, loads = [], [], []
        for batch in batches[1:]:
            rate, cpu = baseline(target, idp, batch)
            base_rates.append(rate)
            base_cpu.append(cpu)
            before = cpu_seconds(server.proc.pid)
            load = post_all(server.port, target, batch, args.connections, tmp)
            load.api_cpu_ms = (cpu_seconds(server.proc.pid) - before) * 1000 / load.requests
            loads.append(load)
        report(base_rates, base_cpu, loads)
        print(f"load average after: {loadavg()}")
        server.stop()
        servers.clear()


def report(base_rates: list[float], base_cpu: list[float], loads: list[Load]) -> None:
    base = statistics.median(base_rates)
    rate = statistics.median(x.rate for x in loads)
    ratio = rate / base if base else 0.0
    verdict = "PASS" if ratio >= TARGET and not any(x.bad for x in loads) else "FAIL"
    rounds = " / ".join(f"{x:,.0f}" for x in base_rates)
    print(f"baseline python3-saml is_valid (strict, 1 thread): {base:,.0f}/s (rounds {rounds})")
    print(f"ACS sign-ins through the whole path: {rate:,.0f}/s ({describe(loads)})")
    print(f"ratio sign-ins / baseline: {ratio:.2f} (target >= {TARGET}: {verdict})")
    # CPU per item is less sensitive than throughput to other work on a shared machine.
    cpu, api_cpu = statistics.median(base_cpu), statistics.median(x.api_cpu_ms for x in loads)
    print(
        f"CPU: baseline {cpu:.2f} ms per is_valid; API process {api_cpu:.2f} ms per sign-in "
        f"(PostgreSQL and the load generator not included): CPU ratio {cpu / api_cpu:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller rounds (600 responses)")
    parser.add_argument("--per-round", type=int, default=None, help="responses per round (2000)")
    parser.add_argument("--users", type=int, default=None, help="distinct users (500)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (8)")
    parser.add_argument(
        "--idp-initiated", action="store_true", help="IdP-initiated instead of SP-initiated"
    )
    parser.add_argument("--_client", dest="client_spec", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_spec:
        client_main(json.loads(args.client_spec))
        return 0
    args.per_round = args.per_round or (600 if args.quick else 2000)
    args.users = args.users or (200 if args.quick else 500)
    if args.users <= args.connections:
        parser.error("--users must exceed --connections (a user signs in once at a time)")
    prefix = f"bench-saml-{os.getpid()}-{uuid.uuid4().hex[:6]}:"
    servers: list[Server] = []
    tmp = Path(tempfile.mkdtemp(prefix="idp-sync-bench-saml-"))
    try:
        run(args, tmp, prefix, servers)
    except Exception as exc:  # setup failure: report it, clean up, exit non-zero
        print(f"bench/saml.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(servers, prefix, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
