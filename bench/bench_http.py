"""HTTP benchmark: membership endpoints as a ratio to a bare FastAPI endpoint, same run.

Usage: python bench/bench_http.py [--quick] [--seconds N] [--rounds N] [--connections N]
       [--client wrk|python] [--only get-membership|create-membership]

What it does:

* creates a fresh PostgreSQL database (``idp_sync_bench_<pid>_<hex>``), migrates it with
  Alembic, seeds one organization, 200 members (for the GETs) and enough users without a
  membership for every POST of the run (each create uses a new user), then runs
  ``VACUUM ANALYZE`` and turns autovacuum off for that database's tables, so that no
  autovacuum of the fresh tables lands inside a round;
* starts two uvicorn servers as subprocesses on free loopback ports, one worker each,
  uvloop + httptools when installed, access log off, log level warning:
  (a) a bare FastAPI app (``bench/_servers.py``: a sync ``def`` and an ``async def``
  endpoint returning a tiny dict), the baseline; (b) idp-sync's
  ``idp_sync.api.app:create_app`` on the bench database;
* drives both with the same load generator in a separate process, keep-alive connections:
  ``wrk`` (1 thread, Lua scripts) if it is on PATH, else a small asyncio client in this
  file (``--client python``). Each scenario gets a 1 s warm-up, then 3 rounds (``--rounds``),
  interleaved so that drift hits every scenario alike; the median round is reported;
* counts, in process before the servers start, the SQL statements one request of each
  endpoint sends (SQLAlchemy's ``before_cursor_execute`` on the engine, plus the
  statements sent on the async pool, ``rows`` and ``write``; BEGIN, COMMIT and the pool's
  pre-ping are not statements here);
* prints req/s for the baseline and, for get-membership and create-membership, the ratio
  to the sync baseline against the target (>= 0.35), and to the async baseline for
  reference (the GET endpoint is ``async def`` since 2026-12-06);
* stops the servers and drops the database. Reports only: exits 0 unless setup failed.

The 2 cores are shared by the load generator, uvicorn and PostgreSQL; only the ratios are
meaningful, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

PG_ADMIN_URL = os.environ.get(
    "IDP_SYNC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("IDP_SYNC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGET = 0.35
ROUNDS = 3
WARMUP_SECONDS = 1.0
MEMBERS_FOR_GET = 200
# Upper bound on create-membership req/s used to size the user pool (it runs far lower).
MAX_CREATE_RATE = 2_500
BASE = "/user_management/organization_memberships"


# --- load generation ------------------------------------------------------------------

LUA = r"""
-- args: mode ("get" | "post"), items file, api key, tag, organization id, max requests
local mode, key, tag, org, cap
local items, reqs = {}, {}
local i, n = 0, 0

function init(args)
  mode, key, tag, org, cap = args[1], args[3], args[4], args[5], tonumber(args[6])
  for line in io.lines(args[2]) do
    if #line > 0 then items[#items + 1] = line end
  end
  n = #items
  if mode == "get" then
    for k, path in ipairs(items) do
      reqs[k] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. key})
    end
  end
end

function request()
  i = i + 1
  if i > cap then wrk.thread:stop() end
  if mode == "get" then
    return reqs[((i - 1) % n) + 1]
  end
  local uid = items[((i - 1) % n) + 1]
  local body = '{"user_id":"' .. uid .. '","organization_id":"' .. org .. '"}'
  return wrk.format("POST", "@BASE@", {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = tag .. "-" .. i,
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d %d %.0f %.0f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""".replace("@BASE@", BASE)


@dataclass
class Load:
    """One load run's outcome."""

    requests: int
    seconds: float
    bad: int  # non-2xx responses and socket errors
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Scenario:
    name: str
    port: int
    mode: str  # "get" or "post"
    items: list[str]  # GET: paths to cycle through; POST: user ids, consumed in order
    per_run: int = 0  # POST: user ids reserved per run
    next_item: int = 0
    rounds: list[Load] = field(default_factory=list)

    def take(self, count: int) -> list[str]:
        if self.mode == "get":
            return self.items
        chunk = self.items[self.next_item : self.next_item + count]
        self.next_item += count
        return chunk


class Driver:
    """Runs a scenario with wrk or with the fallback asyncio client (same for every target)."""

    def __init__(self, client: str, connections: int, api_key: str, org_id: str, tmp: Path) -> None:
        self.client = client
        self.connections = connections
        self.api_key = api_key
        self.org_id = org_id
        self.tmp = tmp
        self.lua = tmp / "bench.lua"
        self.lua.write_text(LUA)
        self.runs = 0

    def run(self, sc: Scenario, seconds: float) -> Load:
        self.runs += 1
        items = sc.take(sc.per_run)
        if not items:
            raise RuntimeError(f"{sc.name}: user pool exhausted")
        items_file = self.tmp / f"items-{self.runs}.txt"
        items_file.write_text("\n".join(items) + "\n")
        tag = f"bench-{os.getpid()}-{self.runs}"
        cap = len(items) if sc.mode == "post" else int(seconds * 200_000) + 1
        if self.client == "wrk":
            return self._wrk(sc, seconds, items_file, tag, cap)
        return self._python(sc, seconds, items_file, tag, cap)

    def _wrk(self, sc: Scenario, seconds: float, items_file: Path, tag: str, cap: int) -> Load:
        cmd = [
            "wrk",
            "-t1",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.lua),
            f"http://127.0.0.1:{sc.port}",
            "--",
            sc.mode,
            str(items_file),
            self.api_key,
            tag,
            self.org_id,
            str(cap),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT")), None)
        if line is None:
            raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
        fields = [float(x) for x in line.split()[1:]]
        req, dur, conn, read, write, _status, timeout, p50, p99 = fields
        non2xx = 0
        for ln in out.stdout.splitlines():
            if "Non-2xx or 3xx responses:" in ln:
                non2xx = int(ln.rsplit(":", 1)[1])
        bad = int(non2xx + conn + read + write + timeout)
        return Load(int(req), dur / 1e6, bad, p50 / 1000, p99 / 1000)

    def _python(self, sc: Scenario, seconds: float, items_file: Path, tag: str, cap: int) -> Load:
        cmd = [
            sys.executable,
            __file__,
            "--_client",
            json.dumps(
                {
                    "port": sc.port,
                    "mode": sc.mode,
                    "items": str(items_file),
                    "key": self.api_key,
                    "tag": tag,
                    "org": self.org_id,
                    "cap": cap,
                    "seconds": seconds,
                    "connections": self.connections,
                }
            ),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if out.returncode != 0:
            raise RuntimeError(f"load client failed: {out.stderr}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return Load(data["requests"], data["seconds"], data["bad"], data["p50_ms"], data["p99_ms"])


def client_main(spec: dict[str, object]) -> None:
    """The fallback load generator: asyncio, raw HTTP/1.1 over keep-alive connections."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    items = [ln for ln in Path(str(spec["items"])).read_text().splitlines() if ln]
    port, cap, seconds = int(str(spec["port"])), int(str(spec["cap"])), float(str(spec["seconds"]))
    key, tag, org = str(spec["key"]), str(spec["tag"]), str(spec["org"])
    host = f"127.0.0.1:{port}"
    auth = f"Bearer {key}"
    if spec["mode"] == "get":
        prebuilt = [
            f"GET {p} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n".encode()
            for p in items
        ]
    state = {"i": 0, "ok": 0, "bad": 0}
    latencies: list[float] = []

    def next_request() -> bytes | None:
        i = state["i"]
        if i >= cap:
            return None
        state["i"] = i + 1
        if spec["mode"] == "get":
            return prebuilt[i % len(prebuilt)]
        body = f'{{"user_id":"{items[i % len(items)]}","organization_id":"{org}"}}'.encode()
        return (
            f"POST {BASE} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: {tag}-{i}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def connection(deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                req = next_request()
                if req is None:
                    return
                t0 = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                state["ok" if head[9:10] == b"2" else "bad"] += 1
        finally:
            writer.close()

    async def main() -> float:
        start = time.perf_counter()
        conns = int(str(spec["connections"]))
        await asyncio.gather(*(connection(start + seconds) for _ in range(conns)))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()

    def pick(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    print(
        json.dumps(
            {
                "requests": state["ok"] + state["bad"],
                "bad": state["bad"],
                "seconds": elapsed,
                "p50_ms": pick(0.5),
                "p99_ms": pick(0.99),
            }
        )
    )


# --- database and servers -------------------------------------------------------------


def seed(url: str, n_users: int, tmp: Path) -> tuple[str, list[str], list[str]]:
    """An organization, MEMBERS_FOR_GET members, and ``n_users`` users with no membership."""
    from sqlalchemy import insert

    from idp_sync.config import Settings
    from idp_sync.db import utcnow
    from idp_sync.ids import new_id
    from idp_sync.memberships.services import create_membership
    from idp_sync.organizations.services import create_organization
    from idp_sync.runtime import Runtime
    from idp_sync.users.models import User

    settings = Settings(DATABASE_URL=url, BROKER_URL=REDIS_URL, IDP_SYNC_DATA_DIR=str(tmp))
    runtime = Runtime(settings)
    try:
        now = utcnow()
        users = [
            {
                "id": new_id("user"),
                "email": f"bench-{i}@example.com",
                "first_name": "Bench",
                "last_name": f"User {i}",
                "name": f"Bench User {i}",
                "email_verified": True,
                "external_id": None,
                "metadata_": {},
                "created_at": now,
                "updated_at": now,
            }
            for i in range(MEMBERS_FOR_GET + n_users)
        ]
        with runtime.transaction() as session:
            org = create_organization(
                session,
                name="Bench Org",
                domains=[],
                external_id=None,
                metadata=None,
                allow_profiles_outside_organization=None,
            )
            org_id = org.id
            for start in range(0, len(users), 5_000):
                session.execute(insert(User), users[start : start + 5_000])
        member_ids = []
        with runtime.transaction() as session:
            for row in users[:MEMBERS_FOR_GET]:
                m = create_membership(
                    session, organization_id=org_id, user_id=row["id"], role_slugs=None
                )
                member_ids.append(m.id)
        return org_id, member_ids, [row["id"] for row in users[MEMBERS_FOR_GET:]]
    finally:
        runtime.dispose()


def settle(url: str) -> None:
    """VACUUM ANALYZE the seeded database and keep autovacuum off its tables for the run:
    an autovacuum of the freshly loaded tables would otherwise land inside a round."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            tables = (
                conn.execute(
                    sa.text(
                        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
                    )
                )
                .scalars()
                .all()
            )
            for table in tables:
                conn.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def count_statements(url: str, org_id: str, member_id: str, users: list[str], tmp: Path) -> str:
    """Statements per request of each endpoint, through the real app in this process."""
    import httpx
    from sqlalchemy import event

    from idp_sync.api.app import create_app
    from idp_sync.config import Settings
    from idp_sync.runtime import Runtime

    key = f"sk_count_{uuid.uuid4().hex}"
    settings = Settings(
        DATABASE_URL=url,
        BROKER_URL=REDIS_URL,
        IDP_SYNC_API_KEY=key,
        IDP_SYNC_DATA_DIR=str(tmp / "count"),
        IDP_SYNC_BROKER_KEY_PREFIX=f"bench-count-{os.getpid()}:",
    )
    runtime = Runtime(settings)
    app = create_app(runtime=runtime)
    counted = {"n": 0}

    def on_statement(*_: object) -> None:
        counted["n"] += 1

    event.listen(runtime.engine, "before_cursor_execute", on_statement)

    async def per_request() -> tuple[float, float]:
        reader = runtime.reader()
        rows = reader.rows

        async def counting(statement, params):  # type: ignore[no-untyped-def]
            counted["n"] += 1
            return await rows(statement, params)

        reader.rows = counting  # type: ignore[method-assign]
        write = getattr(reader, "write", None)
        if write is not None:  # PostgreSQL: the event-loop create's one statement

            async def counting_write(statement, params):  # type: ignore[no-untyped-def]
                counted["n"] += 1
                return await write(statement, params)

            reader.write = counting_write  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            results = []
            for send in (
                lambda i: http.get(f"{BASE}/{member_id}", headers=auth),
                lambda i: http.post(
                    BASE,
                    json={"user_id": users[i], "organization_id": org_id},
                    headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
                ),
            ):
                (await send(0)).raise_for_status()  # warm-up: key check, catalogs, pools
                counted["n"] = 0
                for i in range(1, 6):
                    (await send(i)).raise_for_status()
                results.append(counted["n"] / 5)
        await runtime.close_reader()
        return results[0], results[1]

    try:
        get, create = asyncio.run(per_request())
    finally:
        runtime.dispose()
    return f"get-membership {get:g}, create-membership {create:g}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_flags() -> tuple[list[str], str]:
    flags = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    parts = []
    if importlib.util.find_spec("uvloop"):
        flags += ["--loop", "uvloop"]
        parts.append("uvloop")
    if importlib.util.find_spec("httptools"):
        flags += ["--http", "httptools"]
        parts.append("httptools")
    return flags, "+".join(parts) or "asyncio+h11"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(
    name: str, args: list[str], env: dict[str, str], tmp: Path, probe: str, headers: dict[str, str]
) -> Server:
    """uvicorn serving ``args`` on a free port, once ``probe`` answers 200."""
    import http.client

    port = free_port()
    log = tmp / f"{name}.log"
    flags, _ = uvicorn_flags()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *args, *flags, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(tmp),
        )
    server = Server(name, port, proc, log)
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} server exited:\n{log.read_text()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", probe, headers=headers)
                status = conn.getresponse().status
                conn.close()
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
                continue
            if status != 200:
                raise RuntimeError(f"{name} answered {status} on {probe}:\n{log.read_text()}")
            return server
    except BaseException:
        server.stop()
        raise


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    import sqlalchemy as sa

    name = f"idp_sync_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def purge_redis(prefix: str) -> None:
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


# --- main -----------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict[str, str]:
        lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        return {k: v.strip() for k, _, v in (ln.partition(":") for ln in lines)}

    def peak_rss_mb(self) -> float:
        return int(self.status()["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def children(self) -> list[int]:
        kids: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(p) for p in (task / "children").read_text().split()]
        return kids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_worker(env: dict[str, str], tmp: Path, name: str, *worker_args: str) -> Worker:
    """``idp-sync worker`` with ``worker_args`` (queues, pool, concurrency) as a subprocess,
    once Celery says it is ready."""
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "idp_sync.cli", "worker", *worker_args,
                "--without-mingle", "--without-gossip", "-l", "INFO",
            ],
            env=env,
            cwd=str(tmp),
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    worker = Worker(proc, log)
    deadline = time.monotonic() + 60
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return worker


def stop_all(servers: list[Server], prefix: str, tmp: Path) -> None:
    """A bench's cleanup: its servers, its broker keys, its scratch folder."""
    for server in servers:
        server.stop()
    servers.clear()
    purge_redis(prefix)
    shutil.rmtree(tmp, ignore_errors=True)


def fmt(rate: float) -> str:
    return f"{rate:,.0f} req/s"


def describe(sc: Scenario) -> str:
    rates = [r.rate for r in sc.rounds]
    med = sorted(sc.rounds, key=lambda r: r.rate)[len(sc.rounds) // 2]
    bad = sum(r.bad for r in sc.rounds)
    text = f"rounds {' / '.join(f'{x:,.0f}' for x in rates)}; "
    text += f"p50 {med.p50_ms:.1f} ms, p99 {med.p99_ms:.1f} ms"
    if bad:
        text += f"; {bad} NON-2xx/ERRORS (result invalid)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s rounds instead of 5 s")
    parser.add_argument("--seconds", type=float, default=None, help="length of one round")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (8)")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="rounds per scenario, median reported (3)"
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default=None,
        help="load generator (default: wrk if on PATH, else python)",
    )
    parser.add_argument(
        "--only",
        choices=("get-membership", "create-membership"),
        default=None,
        help="run this endpoint only, with the baselines (e.g. while profiling the server)",
    )
    parser.add_argument("--_client", dest="client_spec", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_spec:
        client_main(json.loads(args.client_spec))
        return 0
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 5.0)
    if args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH (apt-get install wrk)")
    client = args.client or ("wrk" if shutil.which("wrk") else "python")
    if client == "wrk":
        seconds = max(1.0, float(round(seconds)))  # wrk takes whole seconds
    _, loop_http = uvicorn_flags()

    api_key = f"sk_bench_{uuid.uuid4().hex}"
    prefix = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}:"
    per_run = int(MAX_CREATE_RATE * seconds)
    n_users = per_run * args.rounds + int(MAX_CREATE_RATE * WARMUP_SECONDS) + 6  # 6: counting

    servers: list[Server] = []
    tmp = Path(tempfile.mkdtemp(prefix="idp-sync-bench-"))
    try:
        with bench_database() as url:
            from idp_sync.db import upgrade

            t0 = time.perf_counter()
            upgrade(url)
            org_id, member_ids, free_users = seed(url, n_users, tmp)
            settle(url)
            counts = count_statements(url, org_id, member_ids[0], free_users[:6], tmp)
            free_users = free_users[6:]
            users = len(member_ids) + len(free_users) + 6
            print(
                f"setup: migrated, seeded and vacuumed {users:,} users, "
                f"{len(member_ids)} memberships in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            print(
                f"SQL statements per request (in process, mean of 5 after a warm-up): {counts}",
                flush=True,
            )

            base_env = {
                k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")
            }
            bare = start_server(
                "bare",
                ["--app-dir", str(BENCH_DIR), "_servers:bare_app"],
                base_env,
                tmp,
                "/sync",
                {},
            )
            servers.append(bare)
            app_env = {
                **base_env,
                "DATABASE_URL": url,
                "BROKER_URL": REDIS_URL,
                "IDP_SYNC_API_KEY": api_key,
                "IDP_SYNC_BROKER_KEY_PREFIX": prefix,
                "IDP_SYNC_DATA_DIR": str(tmp / "data"),
            }
            auth = {"Authorization": f"Bearer {api_key}"}
            idp = start_server(
                "idp-sync",
                ["--factory", "idp_sync.api.app:create_app"],
                app_env,
                tmp,
                f"{BASE}/{member_ids[0]}",
                auth,
            )
            servers.append(idp)

            scenarios = [
                Scenario("bare-sync", bare.port, "get", ["/sync"]),
                Scenario("bare-async", bare.port, "get", ["/async"]),
                Scenario("get-membership", idp.port, "get", [f"{BASE}/{m}" for m in member_ids]),
                Scenario("create-membership", idp.port, "post", free_users, per_run=per_run),
            ]
            if args.only:
                scenarios = [
                    sc for sc in scenarios if sc.name.startswith("bare") or sc.name == args.only
                ]
            driver = Driver(client, args.connections, api_key, org_id, tmp)
            print(
                f"load average before: {loadavg()} ({os.cpu_count()} cores; "
                "other work on the machine shows up as noise)",
                flush=True,
            )
            print(
                f"load: {client}, 1 client thread, {args.connections} keep-alive connections; "
                f"uvicorn 1 worker, {loop_http}, no access log; "
                f"{args.rounds} rounds x {seconds:g} s (+{WARMUP_SECONDS:g} s warm-up), "
                "median round",
                flush=True,
            )
            for sc in scenarios:  # warm-up: imports, pools, caches, statement caches
                sc.per_run, keep = int(MAX_CREATE_RATE * WARMUP_SECONDS), sc.per_run
                driver.run(sc, WARMUP_SECONDS)
                sc.per_run = keep
            for _ in range(args.rounds):  # interleaved, so drift affects every scenario alike
                for sc in scenarios:
                    sc.rounds.append(driver.run(sc, seconds))

            median = {sc.name: statistics.median(r.rate for r in sc.rounds) for sc in scenarios}
            base_rate = median["bare-sync"]
            by_name = {sc.name: sc for sc in scenarios}
            print(
                f"baseline bare FastAPI GET: {fmt(base_rate)} "
                f"(sync def; {describe(by_name['bare-sync'])})"
            )
            print(
                f"baseline bare FastAPI GET, async def: {fmt(median['bare-async'])} "
                f"({describe(by_name['bare-async'])})"
            )
            for name in ("get-membership", "create-membership"):
                if name not in median:
                    continue
                ratio = median[name] / base_rate if base_rate else 0.0
                to_async = median[name] / median["bare-async"] if median["bare-async"] else 0.0
                verdict = "PASS" if ratio >= TARGET else "FAIL"
                print(
                    f"{name}: {fmt(median[name])} (ratio {ratio:.2f}, "
                    f"target >= {TARGET}: {verdict}; {to_async:.2f} of the async baseline; "
                    f"{describe(by_name[name])})"
                )
            print(f"load average after: {loadavg()}")
            for server in servers:
                server.stop()
            servers.clear()
    except Exception as exc:  # setup failure: report it, clean up, exit non-zero
        print(f"bench_http: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(servers, prefix, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
