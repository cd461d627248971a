"""Hostile load (issue 13): what a careless or malicious client costs the daemon, and
whether it comes back.

Four loads, each against a fresh daemon; for each, the daemon's RSS before (idle), at
peak and 10 s after the clients left, its open fds at peak and after, and the event
loop's responsiveness while the load runs (a `GET /health` every 10 ms from a thread on
a keep-alive connection: p99 and max):

- 1,000 log-stream readers that never read (`/process/{id}/logs/stream` on a command
  that prints 256 MiB), held 15 s;
- `GET /process` with 1,000 processes, back to back for 5 s;
- a 1 GiB file read as JSON (`GET /filesystem/{path}`), read and discarded;
- 3,000 connections that send one header line every 10 s (slowloris), held 40 s.

Goal: peak <= idle + 64 MiB, after <= idle + 8 MiB, no /health over 50 ms.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import resource
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from harness import Daemon, Report, mb, percentile

MIB = 1024 * 1024
# 256 MiB of 64-byte lines: what a chatty build prints.
LINES_COMMAND = "yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c 268435456"


class Prober:
    """GET /health every 10 ms on one keep-alive connection, from a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/health")
                resp = conn.getresponse()
                resp.read()
                self.latencies.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException):
                self.failures += 1
                conn = None
            self._stop.wait(0.01)

    def summary(self) -> str:
        if not self.latencies:
            return "no sample"
        p99 = percentile(self.latencies, 99) * 1000
        worst = max(self.latencies) * 1000
        failed = f", {self.failures} failed" if self.failures else ""
        return f"p99 {p99:.1f} ms, max {worst:.0f} ms ({len(self.latencies)} probes{failed})"


class Sampler:
    """The daemon's RSS and fd count every 50 ms; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self.peak_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss(self.pid))
            self.peak_fds = max(self.peak_fds, fds(self.pid))
            self._stop.wait(0.05)


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def measure(
    report: Report,
    case: str,
    daemon: Daemon,
    load: Callable[[], Awaitable[str]],
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """`prepare` runs first; then the idle figure; then `load`, with the probes on; then the after figure."""
    assert daemon.proc is not None
    pid = daemon.proc.pid
    if prepare is not None:
        await prepare()
    await asyncio.sleep(1.0)
    idle, idle_fds = rss(pid), fds(pid)
    with Prober(daemon.port) as prober, Sampler(pid) as sampler:
        detail = await load()
    started = time.monotonic()
    after = rss(pid)
    while time.monotonic() - started < 10 and after > idle + 8 * MIB:
        await asyncio.sleep(0.5)
        after = rss(pid)
    after_fds = fds(pid)
    grown, kept = sampler.peak_rss - idle, after - idle
    ok = grown <= 64 * MIB and kept <= 8 * MIB and prober.latencies and max(prober.latencies) <= 0.05
    report.add(
        "hostile",
        case,
        f"peak +{mb(grown)}, after +{mb(kept)}",
        f"idle {mb(idle)}",
        None,
        "peak <= +64 MiB, after <= +8 MiB, /health max <= 50 ms",
        f"{'met' if ok else 'NOT met'}; fds {idle_fds} -> peak {sampler.peak_fds} -> {after_fds}; "
        f"/health {prober.summary()}; {detail}",
    )


async def stalled_log_readers(daemon: Daemon, readers: int = 1000, hold: float = 15.0) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{daemon.url}/process", json={"command": LINES_COMMAND}) as r:
            identifier = (await r.json())["pid"]
    request = f"GET /process/{identifier}/logs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    socks = []
    for _ in range(readers):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that never reads
        s.connect(("127.0.0.1", daemon.port))
        s.sendall(request)
        socks.append(s)
    await asyncio.sleep(hold)
    for s in socks:
        s.close()
    return f"{readers} readers held {hold:.0f} s"


async def start_processes(daemon: Daemon, count: int = 1000) -> None:
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def start(i: int) -> None:
            body = {"command": f"echo process {i}; seq 1 200", "waitForCompletion": True}
            async with session.post(f"{daemon.url}/process", json=body) as r:
                await r.read()

        await asyncio.gather(*(start(i) for i in range(count)))


async def many_processes(daemon: Daemon, seconds: float = 5.0) -> str:
    """`GET /process` back to back for `seconds`, the list read and discarded."""
    async with aiohttp.ClientSession() as session:
        sizes = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            async with session.get(f"{daemon.url}/process") as r:
                sizes.append(len(await r.read()))
        elapsed = (time.perf_counter() - started) / len(sizes)
    return f"{len(sizes)} lists, {mb(sizes[-1])} each in {elapsed * 1000:.0f} ms"


async def big_json_read(daemon: Daemon, size: int = 1024 * MIB) -> str:
    path = daemon.workdir / "big.txt"
    line = b"0123456789abcdef" * 4 + b"\n"
    block = line * (MIB // len(line))
    with open(path, "wb") as f:
        written = 0
        while written < size:
            f.write(block[: size - written])
            written += min(len(block), size - written)
    try:
        received = 0
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{daemon.url}/filesystem/{path}") as r:
                status = r.status
                async for chunk in r.content.iter_chunked(1 << 20):
                    received += len(chunk)
        return f"status {status}, {mb(received)} of JSON in {time.perf_counter() - started:.1f} s"
    finally:
        Path(path).unlink()


async def slow_headers(daemon: Daemon, count: int = 3000, hold: float = 40.0) -> str:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(True)
        s.connect(("127.0.0.1", daemon.port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    started = time.monotonic()
    line = 0
    while time.monotonic() - started < hold:
        await asyncio.sleep(10)
        line += 1
        for s in socks:
            try:
                s.send(f"X-Slow-{line}: 1\r\n".encode(), socket.MSG_DONTWAIT)
            except OSError:
                pass
    open_ones = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1)
            open_ones += 0 if data == b"" else 1
        except BlockingIOError:
            open_ones += 1
        except OSError:
            pass
        s.close()
    return f"{count} connections, {open_ones} still held by the daemon after {hold:.0f} s"


async def main(report: Report) -> None:
    raise_fd_limit()
    with Daemon() as daemon:
        await measure(report, "1,000 stalled log-stream readers", daemon, lambda: stalled_log_readers(daemon))
    with Daemon() as daemon:
        await measure(
            report,
            "GET /process with 1,000 processes",
            daemon,
            lambda: many_processes(daemon),
            prepare=lambda: start_processes(daemon),
        )
    with Daemon() as daemon:
        await measure(report, "1 GiB file read as JSON", daemon, lambda: big_json_read(daemon))
    with Daemon() as daemon:
        await measure(report, "3,000 slow-header connections", daemon, lambda: slow_headers(daemon))
