"""Bulk job benchmark (issue 6 point 8): role deletion and default-role change over N
memberships, through the API and a real Celery worker on Redis, against bare SQL.

Usage: python bench/role_deletion.py [--memberships N] [--orgs M] [--batch-size B]
       [--skip-default] [--full-anchor] [--work-mem SIZE] [--timeout SECONDS]

What it does, for each scenario (role deletion, then default-role change):

* creates a fresh PostgreSQL database, migrates it (``idp_sync.db.upgrade``) and seeds it
  by COPY (``bench/_seed.py``): M organizations, N users, N memberships (membership ``i``
  in organization ``i % M``). Role deletion: each membership holds the environment role
  ``doomed`` as its effective role and its API role (role_source "api", single-role
  mode). Default-role change: each is on the default role ``member`` (uses_default).
  Then ``VACUUM ANALYZE``, ``CHECKPOINT``, autovacuum off for its tables, and a clone
  of it (``CREATE DATABASE ... TEMPLATE``) for the anchor;
* starts the API (uvicorn subprocess, ``idp_sync.api.asgi:app``) and one worker
  subprocess (``python -m idp_sync.cli worker -Q bulk -c 1 -P solo``) on Redis with a
  unique broker key prefix and ``IDP_SYNC_JOB_BATCH_SIZE=B``, waits for the worker to be
  ready, then sends ``DELETE /authorization/roles/doomed`` (or creates role ``staff``
  and sends ``PUT /authorization/settings {"default_role_slug": "staff"}``) and polls
  ``GET /jobs/{id}`` every 0.2 s until the job has succeeded. Wall time runs from the
  request to the poll that saw it succeed. The worker's peak RSS is ``VmHWM`` of its
  process (solo pool: the process that runs the task; checked to have no children);
* checks every membership ended on the expected role and that there is exactly one
  ``organization_membership.updated`` event per membership;
* the anchor, on the clone, as issue 6 words it: bare SQL, 5,000 memberships a
  transaction by primary-key range (upper id found first with ``OFFSET 4999 LIMIT 1``),
  a batched UPDATE of the membership rows plus an INSERT ... SELECT of one event row
  each; the ratio job/anchor is judged against it. ``--full-anchor`` adds two more for
  context, each on its own clone: the role rows UPDATE plus the event INSERT (the
  membership's role lives in its role row here), and every write the job makes (role
  rows, membership rows, audit rows and events);
* ``--work-mem 256MB`` sets ``work_mem`` on the bench databases (``ALTER DATABASE``):
  at the server's default (4MB) the role-deletion job's ``affected()`` query
  (``id IN (...) OR id IN (...)``) cannot hash its subqueries at a million holders
  and turns quadratic; a job that has not finished within ``--timeout``
  seconds (900) is reported as such, with its progress, and the run goes on;
* prints times, memberships/s, the ratio job/anchor (aim: within 2x) and the peak RSS
  (aim: under 300 MB); stops everything, drops the databases and the broker keys.

Reports only: exits 0 once set up, 1 if setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))
sys.path.insert(0, str(BENCH_DIR))

import _seed  # noqa: E402
from bench_http import (  # noqa: E402
    REDIS_URL,
    Server,
    Worker,
    loadavg,
    purge_redis,
    start_server,
    start_worker,
)

RATIO_AIM = 2.0
RSS_AIM_MB = 300
POLL_SECONDS = 0.2


# --- processes --------------------------------------------------------------------------


class Api:
    """Blocking JSON calls to the API server on one keep-alive connection."""

    def __init__(self, port: int, api_key: str, timeout: float = 600) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        answer = self.conn.getresponse()
        raw = answer.read()
        return answer.status, json.loads(raw) if raw else {}

    def close(self) -> None:
        self.conn.close()


# --- one scenario -------------------------------------------------------------------------


@dataclass
class JobRun:
    seconds: float
    job: dict[str, object]
    peak_rss_mb: float
    cpu_seconds: float
    children: list[int]
    finished: bool = True


def run_job(kind: str, url: str, args: argparse.Namespace, tmp: Path, api_key: str) -> JobRun:
    prefix = f"bench-rd-{os.getpid()}-{uuid.uuid4().hex[:6]}:"
    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env = {
        **base_env,
        "DATABASE_URL": url,
        "BROKER_URL": REDIS_URL,
        "IDP_SYNC_API_KEY": api_key,
        "IDP_SYNC_BROKER_KEY_PREFIX": prefix,
        "IDP_SYNC_DATA_DIR": str(tmp / "data"),
        "IDP_SYNC_JOB_BATCH_SIZE": str(args.batch_size),
        "IDP_SYNC_LOG_LEVEL": "WARNING",
        "IDP_SYNC_LOG_FORMAT": "text",
    }
    servers: list[Server] = []
    worker: Worker | None = None
    api: Api | None = None
    try:
        auth = {"Authorization": f"Bearer {api_key}"}
        server = start_server(
            f"api-{kind}", ["idp_sync.api.asgi:app"], env, tmp, "/authorization/settings", auth
        )
        servers.append(server)
        worker = start_worker(env, tmp, f"worker-{kind}", "-Q", "bulk", "-c", "1", "-P", "solo")
        api = Api(server.port, api_key, timeout=args.timeout)
        if kind == "deletion":
            request: tuple[str, str, object] = ("DELETE", "/authorization/roles/doomed", None)
        else:
            status, body = api.call("POST", "/authorization/roles", {"slug": "staff", "name": "S"})
            if status != 201:
                raise RuntimeError(f"create role staff: {status} {body}")
            request = ("PUT", "/authorization/settings", {"default_role_slug": "staff"})
        cpu0 = worker.cpu_seconds()
        t0 = time.perf_counter()
        try:
            status, body = api.call(*request)
        except TimeoutError:
            seconds = time.perf_counter() - t0
            job = {"state": "request timed out", "progress": {"done": 0, "total": 0, "changed": 0}}
            return JobRun(
                seconds, job, worker.peak_rss_mb(), worker.cpu_seconds() - cpu0, [], False
            )
        if status != 202:
            raise RuntimeError(f"{request[0]} {request[1]}: {status} {body}")
        job = body.get("job", body)
        assert isinstance(job, dict)
        job_id = job["id"]
        while True:
            time.sleep(POLL_SECONDS)
            status, job = api.call("GET", f"/jobs/{job_id}")
            if status != 200:
                raise RuntimeError(f"GET /jobs/{job_id}: {status} {job}")
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log.read_text()[-3000:]}")
            if time.perf_counter() - t0 > args.timeout:
                seconds = time.perf_counter() - t0
                return JobRun(
                    seconds, job, worker.peak_rss_mb(), worker.cpu_seconds() - cpu0,
                    worker.children(), False,
                )  # fmt: skip
        seconds = time.perf_counter() - t0
        if job["state"] != "succeeded":
            raise RuntimeError(f"job {job_id} {job['state']}: {job.get('error')}")
        return JobRun(
            seconds, job, worker.peak_rss_mb(), worker.cpu_seconds() - cpu0, worker.children()
        )
    finally:
        if api is not None:
            api.close()
        if worker is not None:
            worker.stop()
        for server in servers:
            server.stop()
        purge_redis(prefix)


def scenario(kind: str, args: argparse.Namespace, tmp: Path, api_key: str) -> dict[str, object]:
    """Seed, clone, run the job on one copy and the anchor(s) on the others; drop them."""
    from idp_sync.db import upgrade

    names: list[str] = []
    label = "role deletion" if kind == "deletion" else "default-role change"
    try:
        name = _seed.new_db_name(kind[:3])
        names.append(name)
        url = _seed.create_database(name)
        t0 = time.perf_counter()
        upgrade(url)
        seeded = _seed.seed(url, memberships=args.memberships, orgs=args.orgs, kind=kind)
        if args.work_mem:  # before cloning: the clones inherit nothing, so set each
            _seed.set_work_mem(name, args.work_mem)
        clones = ["anchor"] + (["role_rows", "full"] if args.full_anchor else [])
        urls = {}
        for clone in clones:
            cname = _seed.new_db_name(f"{kind[:3]}_{clone}")
            names.append(cname)
            urls[clone] = _seed.clone_database(name, cname)
            if args.work_mem:
                _seed.set_work_mem(cname, args.work_mem)
        print(
            f"[{label}] setup: migrated, seeded {args.memberships:,} memberships in "
            f"{args.orgs:,} organizations by COPY ({seeded.seconds:.1f} s), cloned for the "
            f"anchor; {time.perf_counter() - t0:.1f} s; load average {loadavg()}",
            flush=True,
        )
        run = run_job(kind, url, args, tmp, api_key)
        if not run.finished:
            progress = run.job["progress"]
            assert isinstance(progress, dict)
            print(
                f"[{label}] job: NOT FINISHED after {run.seconds:.0f} s (state "
                f"{run.job['state']}, progress {progress['done']:,}/{progress['total']:,}); "
                f"worker peak RSS {run.peak_rss_mb:.0f} MB, worker CPU {run.cpu_seconds:.1f} s",
                flush=True,
            )
        new_slug = "member" if kind == "deletion" else "staff"
        n = args.memberships
        if run.finished:
            on_new = _seed.count(
                url,
                "SELECT count(DISTINCT membership_id) FROM organization_membership_roles "
                "WHERE role_slug = %s",
                (new_slug,),
            )
            role_rows = _seed.count(url, "SELECT count(*) FROM organization_membership_roles")
            events = _seed.count(
                url,
                "SELECT count(*) FROM events WHERE event = %s",
                ("organization_membership.updated",),
            )
            distinct_events = _seed.count(
                url,
                "SELECT count(DISTINCT data->>'id') FROM events WHERE event = %s",
                ("organization_membership.updated",),
            )
            ok = on_new == n and role_rows == n and events == n and distinct_events == n
            progress = run.job["progress"]
            assert isinstance(progress, dict)
            rate = n / run.seconds
            print(
                f"[{label}] job: {run.seconds:.1f} s, {rate:,.0f} memberships/s "
                f"(progress {progress['done']:,}/{progress['total']:,}, changed "
                f"{progress['changed']:,}; batch {args.batch_size:,}); worker peak RSS "
                f"{run.peak_rss_mb:.0f} MB (VmHWM, solo pool, {len(run.children)} children), "
                f"worker CPU {run.cpu_seconds:.1f} s",
                flush=True,
            )
            print(
                f"[{label}] check: {on_new:,}/{n:,} memberships on '{new_slug}' "
                f"({role_rows:,} role rows), {events:,} organization_membership.updated events for "
                f"{distinct_events:,} memberships: {'OK' if ok else 'MISMATCH'}",
                flush=True,
            )
        anchors = {}
        for clone in clones:
            old_id = seeded.role_id
            if kind == "deletion":
                new_id = seeded.default_role_id
            else:  # the job's run created ``staff`` through the API: the clone needs it too
                new_id = _seed.add_role(urls[clone], "staff")
            secs, written = _seed.anchor(
                urls[clone], old_role_id=old_id, new_role_id=new_id, new_slug=new_slug,
                full=clone == "full", memberships_only=clone == "anchor",
            )  # fmt: skip
            anchors[clone] = secs
            what = {
                "anchor": "membership rows UPDATE + event INSERT, as issue 6 words it",
                "role_rows": "role rows UPDATE + event INSERT",
                "full": "role rows UPDATE + event INSERT + membership UPDATE + audit INSERT",
            }[clone]
            tag = {"anchor": "", "role_rows": " (role rows)", "full": " (full)"}[clone]
            print(
                f"[{label}] anchor{tag}: {secs:.1f} s, "
                f"{written / secs:,.0f} rows/s ({what}, 5,000 a transaction by id range; "
                f"{written:,} rows)",
                flush=True,
            )
        if not run.finished:
            floor = run.seconds / anchors["anchor"]
            print(f"[{label}] ratio job/anchor: > {floor:.0f}x (job unfinished)", flush=True)
            return {"ratio": None, "rss": run.peak_rss_mb, "ok": False}
        ratio = run.seconds / anchors["anchor"]
        rss_ok = run.peak_rss_mb < RSS_AIM_MB
        line = (
            f"[{label}] ratio job/anchor: {ratio:.1f}x (aim <= {RATIO_AIM:g}x: "
            f"{'PASS' if ratio <= RATIO_AIM else 'FAIL'})"
        )
        if "role_rows" in anchors:
            line += f"; job/role-rows anchor {run.seconds / anchors['role_rows']:.1f}x"
        if "full" in anchors:
            line += f"; job/full anchor {run.seconds / anchors['full']:.1f}x"
        line += (
            f"; peak RSS {run.peak_rss_mb:.0f} MB (aim < {RSS_AIM_MB} MB: "
            f"{'PASS' if rss_ok else 'FAIL'})"
        )
        print(line, flush=True)
        return {"ratio": ratio, "rss": run.peak_rss_mb, "ok": ok}
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                _seed.drop_database(name)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Bulk job benchmark (issue 6 point 8).")
    parser.add_argument("--memberships", type=int, default=100_000, help="N (100,000)")
    parser.add_argument("--orgs", type=int, default=100, help="M organizations (100)")
    parser.add_argument("--batch-size", type=int, default=5000, help="job batch size (5000)")
    parser.add_argument("--skip-default", action="store_true", help="role deletion only")
    parser.add_argument(
        "--full-anchor",
        action="store_true",
        help="also an anchor on the role rows and one making all the job's writes",
    )
    parser.add_argument("--work-mem", default=None, help="work_mem of the bench databases")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="give up on a job after this long (900 s)"
    )
    args = parser.parse_args()
    # Clean up (servers, worker, databases, broker keys) on SIGTERM and on SIGINT, even
    # when started in the background (where SIGINT is inherited as ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    api_key = f"sk_bench_{uuid.uuid4().hex}"
    tmp = Path(tempfile.mkdtemp(prefix="idp-sync-bench-rd-"))
    print(
        f"role_deletion bench: N={args.memberships:,} memberships, M={args.orgs:,} "
        f"organizations, batch {args.batch_size:,}; work_mem {args.work_mem or 'default'}; "
        f"{os.cpu_count()} cores; "
        f"load average {loadavg()}",
        flush=True,
    )
    try:
        kinds = ["deletion"] + ([] if args.skip_default else ["default"])
        for kind in kinds:
            scenario(kind, args, tmp, api_key)
    except Exception as exc:  # setup failure: report it, clean up, exit non-zero
        print(f"role_deletion: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
