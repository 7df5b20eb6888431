"""The load generator of bench/scim.py, run in its own process (``python _scim_load.py SPEC``).

asyncio and raw HTTP/1.1 over keep-alive connections, so that the client costs as little
CPU as possible on a 2-core machine it shares with the servers. Servers that answer
HTTP/1.0 or ``Connection: close`` (scim2-server's ``wsgiref`` server does) are followed:
the connection is reopened for the next request, and that cost is counted against them,
as any client of theirs would pay it.

The spec (a JSON file) names a requests file (one JSON ``[method, path, body]`` a line)
and a mode:

* ``seq``: the requests in order, each once, over ``connections`` connections, until
  they run out, ``cap`` are done or ``seconds`` have passed;
* ``cycle``: the requests over and over until ``seconds`` have passed (GETs);
* ``rate``: open loop, request ``i`` sent at ``start + i / rate`` whatever the answers
  (a new connection is opened when none is idle, up to ``connections`` in flight), for
  the latency scenario.

It prints one JSON line: counts, elapsed seconds, latency percentiles and, when asked,
``done``: the wall-clock time (``time.time()``) at which each request's answer arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

Request = tuple[str, str, Any]


class Conn:
    """One HTTP connection that reopens itself when the server closed it."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        # A keep-alive connection the server closed while it sat idle (uvicorn closes them
        # after 5 s; the open loop leaves its extra connections idle) is reopened rather
        # than written to, as any HTTP client does; if the server closes it just as the
        # request goes out (nothing answered), the request is sent once more on a new one.
        reused = self.writer is not None
        if self.reader is not None and self.reader.at_eof():
            self.close()
            reused = False
        try:
            return await self._send(method, path, body)
        except (ConnectionResetError, asyncio.IncompleteReadError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            self.close()
            return await self._send(method, path, body)

    async def _send(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{self.head}"
        if body is not None:
            req += f"Content-Type: application/scim+json\r\nContent-Length: {len(data)}\r\n"
        self.writer.write(req.encode() + b"\r\n" + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = None, lines[0].startswith(b"HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() != b"keep-alive"
        if length is None:
            payload = await self.reader.read() if close else b""
        else:
            payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.requests: list[Request] = [
            tuple(json.loads(ln))  # type: ignore[misc]
            for ln in Path(spec["requests"]).read_text().splitlines()
            if ln
        ]
        self.headers = {"Authorization": f"Bearer {spec['token']}"}
        self.next = 0
        self.ok = 0
        self.bad = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.done: list[tuple[int, float]] = []

    def take(self) -> int | None:
        i = self.next
        cap = int(self.spec.get("cap") or 0)
        if cap and i >= cap:
            return None
        if self.spec["mode"] != "cycle" and i >= len(self.requests):
            return None
        self.next = i + 1
        return i

    async def one(self, conn: Conn, i: int) -> None:
        method, path, body = self.requests[i % len(self.requests)]
        t0 = time.perf_counter()
        try:
            status, payload = await conn.send(method, path, body)
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn.close()
            status, payload = 0, str(exc).encode()
        self.latencies.append(time.perf_counter() - t0)
        self.done.append((i, time.time()))
        if 200 <= status < 300:
            self.ok += 1
        else:
            self.bad += 1
            if len(self.errors) < 3:
                self.errors.append(f"{method} {path}: {status} {payload[:300]!r}")

    async def closed_loop(self, deadline: float) -> None:
        conn = Conn(int(self.spec["port"]), self.headers)
        try:
            while time.perf_counter() < deadline:
                i = self.take()
                if i is None:
                    return
                await self.one(conn, i)
        finally:
            conn.close()

    async def open_loop(self, start: float, deadline: float) -> None:
        rate = float(self.spec["rate"])
        idle: list[Conn] = []
        tasks = []
        # At most ``connections`` requests in flight: past that a request waits for an
        # answer (and is sent late) rather than pile up on a server that fell behind.
        slots = asyncio.Semaphore(int(self.spec["connections"]))

        async def fire(i: int) -> None:
            async with slots:
                conn = idle.pop() if idle else Conn(int(self.spec["port"]), self.headers)
                await self.one(conn, i)
                idle.append(conn)

        while (i := self.take()) is not None:
            at = start + i / rate
            if at > deadline:
                break
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            tasks.append(asyncio.create_task(fire(i)))
        await asyncio.gather(*tasks)
        for conn in idle:
            conn.close()

    async def main(self) -> float:
        start = time.perf_counter()
        deadline = start + float(self.spec["seconds"])
        if self.spec["mode"] == "rate":
            await self.open_loop(start, deadline)
        else:
            n = int(self.spec["connections"])
            await asyncio.gather(*(self.closed_loop(deadline) for _ in range(n)))
        return time.perf_counter() - start

    def result(self, elapsed: float) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pick(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0

        out: dict[str, Any] = {
            "requests": self.ok + self.bad,
            "bad": self.bad,
            "errors": self.errors,
            "seconds": elapsed,
            "p50_ms": pick(0.5),
            "p99_ms": pick(0.99),
        }
        if self.spec.get("record"):
            out["done"] = self.done
        return out


def main() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    spec = json.loads(Path(sys.argv[1]).read_text())
    run = Run(spec)
    elapsed = asyncio.run(run.main())
    print(json.dumps(run.result(elapsed)))


if __name__ == "__main__":
    main()
