"""Webhook delivery benchmark (issue 7 point 9): signed deliveries to a local receiver with
1 and 10 endpoints, through the API and a real Celery worker on Redis, against a bare signed
``httpx`` POST loop to the same receiver in the same run.

Usage: python bench/webhooks.py [--quick] [--events N] [--endpoints 1,10] [--concurrency C]
       [--steady-seconds S] [--rate R] [--baseline-posts K]

What it does:

* creates a fresh PostgreSQL database and migrates it (``idp_sync.db.upgrade``); starts,
  as uvicorn subprocesses, the receiver (``bench/_webhook_receiver.py``: a bare ASGI app
  that answers 200 and records the arrival time, the path, the event id and the signature
  of every POST) and the API (``idp_sync.api.asgi:app``, with
  ``IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=true``), on Redis with a unique broker key
  prefix;
* for each endpoint count E (1, then 10): deletes the previous scenario's endpoints and
  registers E endpoints on the receiver through ``POST /webhook_endpoints``, subscribed to
  ``organization.created``. Events are made the way a client makes them: ``POST
  /organizations`` (each a new organization, so every delivery has its own ordering key
  and nothing waits for an earlier event of its object). Two phases:

  - *drain*: with no worker running, N organizations are created (4 client threads); then
    one worker is started (``python -m idp_sync.cli worker -Q sync,webhooks -c C``: the
    ``sync`` queue runs the sequencer, whose fan-out hook creates the deliveries in the
    transaction that positions the events, ``webhooks`` runs the deliveries; thread pool,
    prefetch 1, late acks, as deployed). Deliveries/s = N x E / (last arrival - first
    arrival); the time from the worker being ready to the first arrival (sequencing and
    fan-out of the backlog) is printed apart;
  - *steady*: with the worker running, organizations are created at a light steady rate
    (a tenth of the drain's deliveries/s divided by E, at least 1/s; or ``--rate``) for S
    seconds (at least 20 events), and each delivery's latency is its arrival time minus
    its event's ``created_at`` (written in the change's transaction just before it
    commits: the commit itself is counted). The latency from the API's response (after
    the commit) is printed too, and the worker's CPU per delivery (sequencing included);

  then checks that every expected (event, endpoint) pair arrived exactly once (missing,
  duplicates, strays), that every delivery row is ``delivered`` after one attempt, and
  verifies the signatures of a sample of bodies (one POST in 10) with the ``workos``
  SDK's ``webhooks.verify_event`` and the endpoint's secret;
* the baseline, right after each drain (so that it sees the same load on the machine),
  same receiver, same body (one the receiver got): a loop that signs each body
  (``t=<ms>, v1=<HMAC-SHA256>``) and POSTs it with one keep-alive ``httpx.Client``,
  sequentially, and the same with C threads (C = the worker's concurrency), each with
  its own client; POSTs/s, p50/p99 of each POST, and CPU per POST of the loop's process;
* prints, per scenario, deliveries/s / baseline POSTs/s (the faster loop), the worker's
  CPU per delivery / the loop's CPU per POST (the figure least moved by other work on
  the machine), steady p99 / baseline p99 (sequential), and the load average before and
  after; stops everything, drops the database and deletes the broker keys.

Reports only: exits 0 once set up, 1 if setup failed. The 2 cores are shared by the API,
the worker, the receiver, PostgreSQL, Redis and this script; only the ratios mean much.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))
sys.path.insert(0, str(BENCH_DIR))

from _seed import conninfo  # noqa: E402
from bench_http import (  # noqa: E402
    REDIS_URL,
    Server,
    Worker,
    bench_database,
    loadavg,
    start_server,
    start_worker,
    stop_all,
)
from role_deletion import Api  # noqa: E402

EVENT = "organization.created"
CREATE_THREADS = 4
# The steady phase's rate, as a share of the drain's: light, so that its latencies are the
# path's rather than a queue's. A trickle of commits costs the worker one sequencer run per
# commit (batched in the drain), and other work on the 2 cores moves the capacity: at a
# quarter of the drain rate, one endpoint's p50 was already queueing (0.7 s).
STEADY_SHARE = 0.1
SIGNATURE_HEADER = "WorkOS-Signature"


# --- processes --------------------------------------------------------------------------


class Receiver:
    """Reads what the receiver process recorded (see ``_webhook_receiver``)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"

    def _get(self, path: str) -> object:
        import httpx

        return httpx.get(self.url + path, timeout=60, trust_env=False).json()

    def count(self) -> int:
        answer = self._get("/count")
        assert isinstance(answer, dict)
        return int(answer["count"])

    def dump(self, since: int) -> list[list[object]]:
        answer = self._get(f"/dump?since={since}")
        assert isinstance(answer, list)
        return answer

    def wait(self, since: int, expected: int, timeout: float) -> bool:
        """Until ``expected`` POSTs arrived after index ``since`` (then a short grace for
        duplicates), or ``timeout`` seconds went by."""
        deadline = time.monotonic() + timeout
        while self.count() - since < expected:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        time.sleep(0.5)
        return True


# --- making events ------------------------------------------------------------------------


@dataclass
class Made:
    """Organizations created by one phase: id -> time.time() at the API's response."""

    answered: dict[str, float] = field(default_factory=dict)
    failures: int = 0
    seconds: float = 0.0


def create_organizations(port: int, api_key: str, n: int, rate: float | None, tag: str) -> Made:
    """``n`` ``POST /organizations`` from CREATE_THREADS threads; request i is sent no
    earlier than ``i / rate`` seconds after the start (as fast as possible without a rate)."""
    made = Made()
    lock = threading.Lock()
    counter = iter(range(n))
    start = time.perf_counter()

    def run() -> None:
        api = Api(port, api_key, timeout=60)
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                if rate:
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                status, body = api.call("POST", "/organizations", {"name": f"{tag}-{i}"})
                answered = time.time()
                with lock:
                    if status == 201:
                        made.answered[str(body["id"])] = answered
                    else:
                        made.failures += 1
        finally:
            api.close()

    threads = [threading.Thread(target=run) for _ in range(CREATE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made.seconds = time.perf_counter() - start
    return made


def events_of(url: str, org_ids: set[str]) -> dict[str, tuple[str, float]]:
    """event id -> (organization id, created_at as a Unix time) of the phase's events."""
    import psycopg

    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute(
            "SELECT id, data->>'id', created_at FROM events WHERE event = %s", (EVENT,)
        ).fetchall()
    return {eid: (oid, created.timestamp()) for eid, oid, created in rows if oid in org_ids}


def delivery_states(url: str, event_ids: set[str]) -> Counter[str]:
    """``state/attempts`` of the phase's delivery rows, counted."""
    import psycopg

    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute(
            "SELECT event_id, state, attempt_count FROM webhook_deliveries"
        ).fetchall()
    return Counter(f"{state}/{attempts}" for eid, state, attempts in rows if eid in event_ids)


# --- one phase's figures ---------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (any order)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


@dataclass
class Phase:
    """What arrived for one phase, checked against what was expected."""

    name: str
    expected: int
    arrivals: list[list[object]]  # receiver records of this phase
    events: dict[str, tuple[str, float]]
    paths: dict[str, str]  # receiver path -> endpoint secret
    made: Made
    complete: bool
    states: Counter[str] = field(default_factory=Counter)

    def mine(self) -> list[list[object]]:
        return [r for r in self.arrivals if r[1] in self.paths and r[2] in self.events]

    def check(self) -> str:
        pairs = Counter((str(r[1]), str(r[2])) for r in self.mine())
        got = len(pairs)
        dups = sum(c - 1 for c in pairs.values())
        strays = len(self.arrivals) - len(self.mine())
        missing = self.expected - got
        ok = missing == 0 and dups == 0 and strays == 0 and self.complete
        states = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.states.items()))
        return (
            f"{got:,}/{self.expected:,} (event, endpoint) pairs arrived, {missing:,} missing, "
            f"{dups:,} duplicates, {strays:,} strays; delivery rows (state/attempts) {states}: "
            f"{'OK' if ok and set(self.states) == {'delivered/1'} else 'MISMATCH'}"
        )

    def span(self) -> tuple[float, float]:
        times = [float(str(r[0])) for r in self.mine()]
        return (min(times), max(times)) if times else (0.0, 0.0)

    def latencies_ms(self) -> tuple[list[float], list[float]]:
        """Arrival minus the event's ``created_at``, and minus the API's response."""
        from_commit, from_answer = [], []
        for r in self.mine():
            org_id, created = self.events[str(r[2])]
            arrival = float(str(r[0]))
            from_commit.append((arrival - created) * 1000)
            answered = self.made.answered.get(org_id)
            if answered is not None:
                from_answer.append((arrival - answered) * 1000)
        return from_commit, from_answer

    def signatures(self) -> tuple[int, int]:
        """(verified, sampled): sampled bodies checked with the SDK's ``verify_event``."""
        from workos.webhooks._verification import verify_event

        sampled = verified = 0
        for r in self.mine():
            if r[4] is None:
                continue
            sampled += 1
            try:
                event = verify_event(
                    event_body=str(r[4]).encode(),
                    event_signature=str(r[3]),
                    secret=self.paths[str(r[1])],
                    tolerance=24 * 3600,
                )
            except Exception:
                continue
            verified += (
                getattr(event, "id", None) == r[2] and getattr(event, "event", None) == EVENT
            )
        return verified, sampled


# --- the baseline ----------------------------------------------------------------------------


@dataclass
class Baseline:
    posts: int
    seconds: float
    cpu_seconds: float  # of this process: the loop's own cost, signing and POSTing
    latencies_ms: list[float]
    bad: int

    @property
    def rate(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0


def baseline(url: str, body: bytes, posts: int, threads: int) -> Baseline:
    """``posts`` signed POSTs of ``body`` to ``url``, from ``threads`` threads with one
    keep-alive ``httpx.Client`` each: the floor a delivery path could reach."""
    import httpx

    secret = "bench-baseline-secret"
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()
    counter = iter(range(posts))

    def run() -> None:
        with httpx.Client(timeout=10, follow_redirects=False, trust_env=False) as client:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                t0 = time.perf_counter()
                stamp = int(time.time() * 1000)
                digest = hmac.new(
                    secret.encode(), str(stamp).encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                response = client.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: f"t={stamp}, v1={digest}",
                    },
                )
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(elapsed)
                    bad[0] += response.status_code != 200

    start, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Baseline(posts, seconds, cpu, latencies, bad[0])


def describe(b: Baseline) -> str:
    errors = f"; {b.bad} NON-200 (invalid)" if b.bad else ""
    return (
        f"{b.rate:,.0f} POSTs/s, p50 {pct(b.latencies_ms, 0.5):.1f} ms, "
        f"p99 {pct(b.latencies_ms, 0.99):.1f} ms, {b.cpu_seconds / b.posts * 1000:.2f} ms CPU "
        f"per POST ({b.posts:,} POSTs){errors}"
    )


def baselines(ctx: Context, label: str, body: bytes) -> tuple[Baseline, Baseline]:
    """Both loops, now (right after a drain, so that they see the same load on the machine),
    to the receiver's ``/baseline``; printed."""
    args = ctx.args
    target = ctx.receiver.url + "/baseline"
    seq = baseline(target, body, args.baseline_posts, 1)
    par = baseline(target, body, args.baseline_posts, args.concurrency)
    for b, threads in ((seq, 1), (par, args.concurrency)):
        print(
            f"{label} baseline, {len(body)}-byte signed body, {threads} "
            f"thread{'s' if threads > 1 else ''}: {describe(b)}",
            flush=True,
        )
    return seq, par


# --- the scenario --------------------------------------------------------------------------


@dataclass
class Context:
    url: str
    env: dict[str, str]
    tmp: Path
    api_key: str
    api_port: int
    receiver: Receiver
    args: argparse.Namespace


@dataclass
class Outcome:
    endpoints: int
    drain_rate: float = 0.0
    drain_cpu_ms: float = float("nan")  # worker CPU per delivery in the drain
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")


def register(ctx: Context, count: int, previous: list[str]) -> tuple[list[str], dict[str, str]]:
    """Delete ``previous`` endpoints, register ``count`` new ones; (ids, path -> secret)."""
    api = Api(ctx.api_port, ctx.api_key)
    try:
        for endpoint_id in previous:
            status, body = api.call("DELETE", f"/webhook_endpoints/{endpoint_id}")
            if status != 204:
                raise RuntimeError(f"DELETE endpoint: {status} {body}")
        ids, paths = [], {}
        for i in range(count):
            path = f"/hook-e{count}-{i}-{uuid.uuid4().hex[:6]}"
            status, body = api.call(
                "POST",
                "/webhook_endpoints",
                {"endpoint_url": ctx.receiver.url + path, "events": [EVENT]},
            )
            if status != 201:
                raise RuntimeError(f"POST /webhook_endpoints: {status} {body}")
            ids.append(str(body["id"]))
            paths[path] = str(body["secret"])
        return ids, paths
    finally:
        api.close()


def run_phase(
    ctx: Context,
    name: str,
    paths: dict[str, str],
    make: Callable[[], Made],
    before_wait: Callable[[], None] = lambda: None,
) -> Phase:
    since = ctx.receiver.count()
    made = make()
    before_wait()
    expected = len(made.answered) * len(paths)
    complete = ctx.receiver.wait(since, expected, timeout=max(120.0, expected / 10))
    events = events_of(ctx.url, set(made.answered))
    phase = Phase(name, expected, ctx.receiver.dump(since), events, paths, made, complete)
    phase.states = delivery_states(ctx.url, set(events))
    return phase


def scenario(ctx: Context, count: int, previous: list[str]) -> tuple[Outcome, list[str]]:
    """Drain then steady phase with ``count`` endpoints; returns the endpoints made."""
    args = ctx.args
    ids, paths = register(ctx, count, previous)
    label = f"[{count} endpoint{'s' if count > 1 else ''}]"
    outcome = Outcome(count)
    worker: Worker | None = None
    ready = cpu = 0.0

    def start() -> None:
        nonlocal worker, ready, cpu
        worker = start_worker(
            ctx.env, ctx.tmp, f"worker-e{count}", "-Q", "sync,webhooks", "-c", str(args.concurrency)
        )
        ready, cpu = time.time(), worker.cpu_seconds()

    try:
        tag = f"e{count}-drain"
        drain = run_phase(
            ctx, "drain", paths,
            lambda: create_organizations(ctx.api_port, ctx.api_key, args.events, None, tag),
            start,
        )  # fmt: skip
        first, last = drain.span()
        n = len(drain.mine())
        outcome.drain_rate = n / (last - first) if last > first else 0.0
        assert worker is not None
        outcome.drain_cpu_ms = (worker.cpu_seconds() - cpu) / max(n, 1) * 1000
        print(
            f"{label} drain: {len(drain.made.answered):,} events made with no worker running "
            f"({len(drain.made.answered) / drain.made.seconds:,.0f}/s through the API, "
            f"{drain.made.failures} failed); worker ready -> first delivery "
            f"{first - ready:.2f} s (sequencing and fan-out of the backlog), then {n:,} "
            f"deliveries in {last - first:.2f} s: {outcome.drain_rate:,.0f} deliveries/s "
            f"({outcome.drain_rate / count:,.0f} events/s); worker CPU "
            f"{outcome.drain_cpu_ms:.1f} ms per delivery",
            flush=True,
        )
        print(f"{label} drain check: {drain.check()}", flush=True)
        sample = next((str(r[4]) for r in drain.mine() if r[4] is not None), '{"id":"x"}')
        seq, par = baselines(ctx, label, sample.encode())

        rate = args.rate or max(1.0, STEADY_SHARE * outcome.drain_rate / count)
        total = max(20, int(rate * args.steady_seconds))
        cpu = worker.cpu_seconds()
        steady = run_phase(
            ctx, "steady", paths,
            lambda: create_organizations(ctx.api_port, ctx.api_key, total, rate, f"e{count}-st"),
        )  # fmt: skip
        from_commit, from_answer = steady.latencies_ms()
        outcome.p50_ms, outcome.p99_ms = pct(from_commit, 0.5), pct(from_commit, 0.99)
        offered = len(steady.made.answered) / steady.made.seconds
        steady_cpu = (worker.cpu_seconds() - cpu) / max(len(steady.mine()), 1) * 1000
        print(
            f"{label} steady: {len(steady.made.answered):,} events at {offered:,.1f}/s "
            f"(aimed {rate:,.1f}/s, {offered * count:,.0f} deliveries/s; worker CPU "
            f"{steady_cpu:.1f} ms per delivery, sequencing included); commit -> delivery "
            f"p50 {outcome.p50_ms:,.0f} ms, p99 {outcome.p99_ms:,.0f} ms, max "
            f"{max(from_commit, default=float('nan')):,.0f} ms (from the event's created_at); "
            f"from the API's response p50 {pct(from_answer, 0.5):,.0f} ms, p99 "
            f"{pct(from_answer, 0.99):,.0f} ms",
            flush=True,
        )
        print(f"{label} steady check: {steady.check()}", flush=True)
        verified, sampled = 0, 0
        for phase in (drain, steady):
            v, s = phase.signatures()
            verified, sampled = verified + v, sampled + s
        verdict = "OK" if verified == sampled and sampled else "MISMATCH"
        print(
            f"{label} signatures: {verified}/{sampled} sampled bodies verified by the workos "
            f"SDK's verify_event with the endpoint's secret: {verdict}",
            flush=True,
        )
        ratios(label, outcome, seq, par, args.concurrency)
    finally:
        if worker is not None:
            worker.stop()
    return outcome, ids


# --- main ----------------------------------------------------------------------------------------


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 events, 4 s steady phases")
    parser.add_argument("--events", type=int, default=None, help="N events per drain (500)")
    parser.add_argument("--endpoints", default="1,10", help="endpoint counts, in order (1,10)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads (4)")
    parser.add_argument(
        "--steady-seconds", type=float, default=None, help="length of a steady phase (15)"
    )
    parser.add_argument("--rate", type=float, default=None, help="steady events/s (auto)")
    parser.add_argument(
        "--baseline-posts", type=int, default=None, help="POSTs per baseline loop (2000)"
    )
    args = parser.parse_args()
    if args.events is None:
        args.events = 100 if args.quick else 500
    if args.steady_seconds is None:
        args.steady_seconds = 4.0 if args.quick else 15.0
    if args.baseline_posts is None:
        args.baseline_posts = 300 if args.quick else 2000
    args.endpoint_counts = [int(x) for x in args.endpoints.split(",") if x.strip()]
    return args


def ratios(label: str, o: Outcome, seq: Baseline, par: Baseline, threads: int) -> None:
    """Ours against the faster of the two loops (throughput, CPU) and against the
    sequential loop's POST (p99 latency)."""
    best = max((seq, par), key=lambda b: b.rate)
    which = "1 thread" if best is seq else f"{threads} threads"
    base_cpu = best.cpu_seconds / best.posts * 1000
    seq_p99 = pct(seq.latencies_ms, 0.99)
    print(
        f"{label} ratios: deliveries/s {o.drain_rate:,.0f} / baseline {best.rate:,.0f} "
        f"POSTs/s (faster loop, {which}) = {o.drain_rate / best.rate:.3f}; CPU per delivery "
        f"{o.drain_cpu_ms:.1f} ms / per POST {base_cpu:.2f} ms = {o.drain_cpu_ms / base_cpu:.0f}x; "
        f"steady p99 commit -> delivery {o.p99_ms:,.0f} ms / baseline POST p99 "
        f"{seq_p99:.1f} ms (1 thread) = {o.p99_ms / seq_p99:,.0f}x",
        flush=True,
    )


def main() -> int:
    args = parse_args()
    # Clean up (servers, worker, database, broker keys) on SIGTERM and on SIGINT, even
    # when started in the background (where SIGINT is inherited as ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    api_key = f"sk_bench_{uuid.uuid4().hex}"
    prefix = f"bench-wh-{os.getpid()}-{uuid.uuid4().hex[:6]}:"
    tmp = Path(tempfile.mkdtemp(prefix="idp-sync-bench-wh-"))
    servers: list[Server] = []
    print(
        f"webhooks bench: N={args.events:,} events per drain, endpoints "
        f"{args.endpoints}, worker -c {args.concurrency} (threads), steady phases "
        f"{args.steady_seconds:g} s; {os.cpu_count()} cores; load average {loadavg()}",
        flush=True,
    )
    try:
        with bench_database() as url:
            from idp_sync.db import upgrade

            upgrade(url)
            base_env = {
                k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")
            }
            app = ["--app-dir", str(BENCH_DIR), "--lifespan", "off", "_webhook_receiver:app"]
            receiver = Receiver(start_server("receiver", app, base_env, tmp, "/count", {}))
            servers.append(receiver.server)
            env = {
                **base_env,
                "DATABASE_URL": url,
                "BROKER_URL": REDIS_URL,
                "IDP_SYNC_API_KEY": api_key,
                "IDP_SYNC_BROKER_KEY_PREFIX": prefix,
                "IDP_SYNC_DATA_DIR": str(tmp / "data"),
                "IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
                "IDP_SYNC_LOG_LEVEL": "WARNING",
                "IDP_SYNC_LOG_FORMAT": "text",
            }
            auth = {"Authorization": f"Bearer {api_key}"}
            api = start_server(
                "api", ["idp_sync.api.asgi:app"], env, tmp, "/webhook_endpoints", auth
            )
            servers.append(api)
            ctx = Context(url, env, tmp, api_key, api.port, receiver, args)
            outcomes: list[Outcome] = []
            previous: list[str] = []
            for count in args.endpoint_counts:
                outcome, previous = scenario(ctx, count, previous)
                outcomes.append(outcome)
            for server in servers:
                server.stop()
            servers.clear()
    except Exception as exc:  # setup failure: report it, clean up, exit non-zero
        print(f"webhooks bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(servers, prefix, tmp)
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
