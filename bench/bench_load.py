"""The rest of the benchmark suite (docs/benchmarks.md):

- B1 GET /health: req/s with 64 connections, p50 with one, against aiohttp's hello world;
- B3 exec under concurrency 1-64: execs/s, p50 and p99 against asyncio spawning at the same
  concurrency, and the daemon's CPU time per exec (/proc/<pid>/stat, all its threads; plot:
  exec_concurrency.png; unpinned, daemon and baseline alike: in a sandbox children use every core;
  the venv's daemon, then the one-file binary's when `make binary` has built it);
- B4 big output (`seq 1 1000000`, 6.9 MB) by wait, /logs and the NDJSON stream: bytes
  exact, time against the raw pipe, RSS growth;
- B5 stream throughput against line size (plot: stream_line_size.png), and a trickle
  (a line every 10 ms): time from the child's write to the client;
- B6 log completeness: 1,000 fast-exiting commands printing 1-10 k lines of mixed stdout
  and stderr with multibyte UTF-8 across 64 KiB boundaries: lost, duplicated, garbled;
- B7 a client that drops a log stream mid-output and reconnects: the replay then the
  follow give every line once (the contract's resume is a full replay from disk);
- B10 listing a directory of 10,000 entries, against os.scandir + lstat in Python;
- B14 waitForPorts: start to ready, against polling connect() on the same server;
- B15 footprint: idle CPU, RSS, fds and zombies, then after 100 processes and ~1 GB of
  logs;
- B17 a stream soak (BENCH_SOAK_SECONDS, default 300): never cut, every line in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from bench_binary import BINARY
from bench_process import SHELL, DirectSpawner
from harness import BaselineServer, Daemon, Report, every_core, free_port, mb, ms, percentile, summarize

CONCURRENCY = [1, 2, 4, 8, 16, 32, 64]
LINE_SIZES = [16, 128, 1024, 16384]
STREAM_TOTAL = 64 * 1024 * 1024


async def load(url: str, connections: int, seconds: float) -> tuple[float, list[float]]:
    """Requests/s over `seconds` with `connections` concurrent keep-alive clients."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        return len(latencies) / (time.perf_counter() - t0), latencies


async def health_throughput(report: Report) -> None:
    with Daemon() as daemon:
        baseline = BaselineServer(daemon.workdir)
        try:
            await baseline.wait()
            for url in (f"{daemon.url}/health", f"{baseline.url}/hello"):
                await load(url, 8, 1.0)  # warm-up
            ours, _ = await load(f"{daemon.url}/health", 64, 5.0)
            theirs, _ = await load(f"{baseline.url}/hello", 64, 5.0)
            _, one = await load(f"{daemon.url}/health", 1, 3.0)
            _, one_base = await load(f"{baseline.url}/hello", 1, 3.0)
        finally:
            baseline.close()
    report.add(
        "http",
        "GET /health, 64 connections",
        f"{ours:.0f} req/s",
        f"aiohttp hello {theirs:.0f} req/s",
        ours / theirs,
        ">= 0.8x",
        "one driver core: the client limits both",
    )
    o50, b50 = statistics.median(one), statistics.median(one_base)
    report.add("http", "GET /health p50, 1 connection", ms(o50), f"aiohttp hello {ms(b50)}", o50 / b50, "<= 1.5x")


async def exec_concurrency(report: Report) -> None:
    with every_core():
        await _exec_concurrency(report)


async def _exec_concurrency(report: Report) -> None:
    # Unpinned, daemon and baseline alike: pinned to one core, a spawner's children run
    # on its core too, which no sandbox does. The daemon from the venv, and the one-file
    # build when there is one (what users run), each after a warm-up, each concurrency
    # interleaved with its baseline.
    spawner = DirectSpawner(pinned=False)
    command = "echo 'hello world'"
    daemons: dict[str, Path | None] = {"sandbox-api POST /process": None}
    if BINARY.exists():
        daemons["sandbox-api binary POST /process"] = BINARY
    rates: dict[str, list[float]] = {name: [] for name in [*daemons, "asyncio spawn (baseline)"]}
    p50s: dict[str, list[float]] = {name: [] for name in rates}
    for name, binary in daemons.items():
        baseline = "asyncio spawn (baseline)" if name == next(iter(daemons)) else None
        with Daemon(env={"SHELL": SHELL}, pinned=False, binary=binary) as daemon:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

                async def one(daemon: Daemon = daemon, session: aiohttp.ClientSession = session) -> float:
                    body = {"command": command, "waitForCompletion": True}
                    t0 = time.perf_counter()
                    async with session.post(f"{daemon.url}/process", json=body) as response:
                        result = await response.json()
                    assert result["status"] == "completed", result
                    return time.perf_counter() - t0

                for _ in range(100):  # warm-up: the first execs build what later ones reuse
                    await one()
                spawner.batch(1, 50, command)
                for concurrency in CONCURRENCY:
                    total = max(400, concurrency * 25)
                    latencies: list[float] = []
                    queue = iter(range(total))

                    async def worker(queue: Iterator[int] = queue, latencies: list[float] = latencies) -> None:
                        for _ in queue:
                            latencies.append(await one())

                    cpu0 = proc_stat_cpu(daemon.proc.pid)
                    t0 = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                    seconds = time.perf_counter() - t0
                    cpu_per_exec = (proc_stat_cpu(daemon.proc.pid) - cpu0) / total
                    base_seconds, base_latencies = spawner.batch(concurrency, total, command)
                    ours, theirs = total / seconds, total / base_seconds
                    rates[name].append(ours)
                    p50s[name].append(statistics.median(latencies) * 1000)
                    if baseline is not None:
                        rates[baseline].append(theirs)
                        p50s[baseline].append(statistics.median(base_latencies) * 1000)
                    p50, base_p50 = statistics.median(latencies), statistics.median(base_latencies)
                    report.add(
                        "exec",
                        f"echo, {concurrency} concurrent: execs/s{' (binary)' if binary else ''}",
                        f"{ours:.0f}/s",
                        f"asyncio {theirs:.0f}/s",
                        ours / theirs,
                        ">= 0.8x" if concurrency >= 8 else "",
                        f"p50 {ms(p50)} ({p50 / base_p50:.2f}x), p99 {ms(percentile(latencies, 99))}"
                        f" (asyncio p50 {ms(base_p50)}, p99 {ms(percentile(base_latencies, 99))});"
                        f" daemon CPU {cpu_per_exec * 1000:.2f} ms/exec",
                    )
    spawner.close()
    report.curve(
        "exec_concurrency",
        "exec of `echo` against concurrency",
        "concurrent clients",
        "p50 latency (ms)",
        CONCURRENCY,
        p50s,
        log_x=True,
    )
    report.curve(
        "exec_rate",
        "execs per second against concurrency",
        "concurrent clients",
        "execs/s",
        CONCURRENCY,
        rates,
        log_x=True,
    )


def raw_pipe(command: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    out = subprocess.run([SHELL, "-c", command], capture_output=True, check=True).stdout
    return time.perf_counter() - t0, out


async def ndjson_lines(response: aiohttp.ClientResponse):
    pending = b""
    async for chunk in response.content.iter_chunked(1 << 20):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line:
                yield line
    if pending.strip():
        yield pending


async def big_output(report: Report) -> None:
    command = "seq 1 1000000"
    base_seconds, expected = min(raw_pipe(command) for _ in range(3))
    with Daemon(
        env={
            "SHELL": SHELL,
            "SANDBOX_MAX_IN_MEMORY_LOG_BYTES": str(16 << 20),
            "SANDBOX_MAX_LOGS_RESPONSE_BYTES": str(16 << 20),
        }
    ) as daemon:
        async with aiohttp.ClientSession() as session:
            before = daemon.rss()
            t0 = time.perf_counter()
            async with session.post(
                f"{daemon.url}/process", json={"command": command, "name": "big", "waitForCompletion": True}
            ) as r:
                result = await r.json()
            waited = time.perf_counter() - t0
            assert result["stdout"].encode() == expected, "wait: bytes differ"
            t0 = time.perf_counter()
            async with session.get(f"{daemon.url}/process/big/logs") as r:
                logs = await r.json()
            logs_seconds = time.perf_counter() - t0
            assert logs["stdout"].encode() == expected, "/logs: bytes differ"
            t0 = time.perf_counter()
            received = []
            async with session.post(
                f"{daemon.url}/process",
                json={"command": command, "name": "big2"},
                headers={"Accept": "text/event-stream"},
            ) as r:
                async for line in ndjson_lines(r):  # the final result line holds the output too
                    event = json.loads(line)
                    if event.get("type") == "stdout":
                        received.append(event["data"] + "\n")
            streamed = time.perf_counter() - t0
            assert "".join(received).encode() == expected, "NDJSON: bytes differ"
            growth = daemon.rss() - before
    # The case above ends with a result line that inlines the whole output twice (the 16 MiB
    # inline limit set for the other two), JSON in a JSON string: parsing it is most of the time.
    # The same stream with the default limit (a 64 KiB tail in the result) times the stream itself.
    with Daemon(env={"SHELL": SHELL}) as daemon:
        async with aiohttp.ClientSession() as session:
            t0 = time.perf_counter()
            received = []
            async with session.post(
                f"{daemon.url}/process", json={"command": command}, headers={"Accept": "text/event-stream"}
            ) as r:
                async for line in ndjson_lines(r):
                    event = json.loads(line)
                    if event.get("type") == "stdout":
                        received.append(event["data"] + "\n")
            streamed_default = time.perf_counter() - t0
            assert "".join(received).encode() == expected, "NDJSON (default tail): bytes differ"
    for case, seconds in (
        ("waitForCompletion", waited),
        ("GET /logs", logs_seconds),
        ("NDJSON stream", streamed),
        ("NDJSON, 64 KiB result tail", streamed_default),
    ):
        report.add(
            "bigout",
            f"seq 1 1000000 (6.9 MB) via {case}",
            ms(seconds),
            f"raw pipe {ms(base_seconds)}",
            seconds / base_seconds,
            "bytes identical",
            "bytes identical",
        )
    report.add("bigout", "RSS growth over the three", mb(growth), "", None, "<= 32 MiB")


async def line_size_curve(report: Report) -> None:
    ours, theirs = [], []
    with Daemon(env={"SHELL": SHELL, "SANDBOX_MAX_LOG_FILE_BYTES": "0"}) as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            for size in LINE_SIZES:
                command = f"yes \"$(head -c {size - 1} /dev/zero | tr '\\0' x)\" | head -c {STREAM_TOTAL}"
                base_seconds, out = raw_pipe(command)
                assert len(out) == STREAM_TOTAL
                t0 = time.perf_counter()
                received = 0
                async with session.post(
                    f"{daemon.url}/process", json={"command": command}, headers={"Accept": "text/event-stream"}
                ) as r:
                    async for chunk in r.content.iter_chunked(1 << 20):
                        received += len(chunk)
                seconds = time.perf_counter() - t0
                ours.append(STREAM_TOTAL / seconds / 1e6)
                theirs.append(STREAM_TOTAL / base_seconds / 1e6)
                report.add(
                    "stream",
                    f"64 MiB of {size}-byte lines, NDJSON",
                    f"{ours[-1]:.0f} MB/s",
                    f"raw pipe {theirs[-1]:.0f} MB/s",
                    base_seconds / seconds,
                    ">= 0.25x",
                )
    report.curve(
        "stream_line_size",
        "NDJSON exec stream throughput against line size",
        "line size (bytes)",
        "MB/s of output",
        LINE_SIZES,
        {"sandbox-api NDJSON": ours, "raw pipe (baseline)": theirs},
        log_x=True,
    )


async def trickle(report: Report) -> None:
    """A line every 10 ms carrying the child's clock: how late does the client see it?"""
    command = "i=0; while [ $i -lt 300 ]; do date +%s.%N; i=$((i+1)); sleep 0.01; done"
    delays: dict[str, list[float]] = {"NDJSON exec stream": [], "/logs/stream": []}
    with Daemon(env={"SHELL": "/bin/bash"}) as daemon:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{daemon.url}/process",
                json={"command": command, "name": "t1"},
                headers={"Accept": "text/event-stream"},
            ) as r:
                async for line in r.content:
                    event = json.loads(line)
                    if event.get("type") == "stdout":
                        now = time.time()
                        delays["NDJSON exec stream"] += [now - float(v) for v in event["data"].split("\n") if v]
            async with session.post(f"{daemon.url}/process", json={"command": command, "name": "t2"}) as r:
                await r.read()
            async with session.get(f"{daemon.url}/process/t2/logs/stream") as r:
                async for line in r.content:
                    text = line.decode().strip()
                    if text.startswith("stdout:"):
                        delays["/logs/stream"].append(time.time() - float(text.split(":", 1)[1]))
    for name, values in delays.items():
        values = values[20:]  # the first lines include the stream's set-up
        if not values:
            continue
        d50, d99 = summarize(values)
        report.add(
            "stream",
            f"trickle, write to client: {name}",
            f"p50 {ms(d50)}",
            "",
            None,
            "p50 < 5 ms, p99 < 50 ms",
            f"p99 {ms(d99)}",
        )


async def large_listing(report: Report) -> None:
    with Daemon() as daemon:
        directory = daemon.workdir / "many"
        directory.mkdir()
        for i in range(10000):
            (directory / f"file-{i:05}.txt").write_bytes(b"x")

        def scandir() -> float:
            t0 = time.perf_counter()
            entries = [(e.name, e.stat(follow_symlinks=False)) for e in os.scandir(directory)]
            assert len(entries) == 10000
            return time.perf_counter() - t0

        async with aiohttp.ClientSession() as session:
            ours, theirs = [], []
            for _ in range(9):  # interleaved with the baseline: this machine drifts a lot
                t0 = time.perf_counter()
                async with session.get(f"{daemon.url}/filesystem/{directory}") as r:
                    listing = await r.json()
                ours.append(time.perf_counter() - t0)
                assert len(listing["files"]) == 10000
                theirs.append(scandir())
            small = []
            for _ in range(50):
                t0 = time.perf_counter()
                async with session.get(f"{daemon.url}/filesystem/tmp") as r:
                    await r.read()
                small.append(time.perf_counter() - t0)
    o, t = statistics.median(ours[1:]), statistics.median(theirs[1:])  # the first is a warm-up
    report.add("fs", "list a directory of 10,000 files", ms(o), f"os.scandir+lstat {ms(t)}", o / t, "<= 2x")
    report.add("fs", "GET /filesystem/tmp (the original's case) p50", ms(statistics.median(small)), "", None)


async def port_detection(report: Report) -> None:
    ours, theirs = [], []
    with Daemon() as daemon:
        async with aiohttp.ClientSession() as session:
            for _ in range(7):
                port = free_port()
                # Bound to all addresses: a loopback-only server is not "ready" (README).
                command = f"exec {sys.executable} -m http.server {port}"
                t0 = time.perf_counter()
                async with session.post(
                    f"{daemon.url}/process", json={"command": command, "waitForPorts": [port]}
                ) as r:
                    result = await r.json()
                ours.append(time.perf_counter() - t0)
                async with session.delete(f"{daemon.url}/process/{result['pid']}/kill") as r:
                    await r.read()
                port = free_port()
                t0 = time.perf_counter()
                server = subprocess.Popen(
                    [sys.executable, "-m", "http.server", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                        break
                    except OSError:
                        await asyncio.sleep(0.001)
                theirs.append(time.perf_counter() - t0)
                server.kill()
                server.wait()
    o, t = statistics.median(ours), statistics.median(theirs)
    report.add(
        "ports",
        "waitForPorts: start to ready (http.server)",
        ms(o),
        f"connect() polling {ms(t)}",
        o / t,
        "p50 <= 300 ms",
        f"our overhead {ms(o - t)}",
    )


def proc_stat_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def zombies_of(pid: int) -> int:
    count = 0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                count += 1
        except OSError:
            pass
    return count


async def footprint(report: Report) -> None:
    with Daemon(env={"SHELL": SHELL}) as daemon:
        pid = daemon.proc.pid
        await asyncio.sleep(2)
        cpu0, t0 = proc_stat_cpu(pid), time.monotonic()
        await asyncio.sleep(20)
        idle_cpu = (proc_stat_cpu(pid) - cpu0) / (time.monotonic() - t0) * 100
        fds0 = len(os.listdir(f"/proc/{pid}/fd"))
        report.add("footprint", "idle 20 s: CPU", f"{idle_cpu:.2f} %", "", None, "< 1 %")
        report.add("footprint", "idle: RSS, fds", f"{mb(daemon.rss())}, {fds0} fds", "", None, "RSS < 60 MB")
        async with aiohttp.ClientSession() as session:
            # 100 processes, ~1 GB of logs between them (10 MiB each).
            async def one(i: int) -> None:
                body = {
                    "command": "head -c 10485760 /dev/zero | tr '\\0' a | fold -w 1023",
                    "name": f"p{i}",
                    "waitForCompletion": True,
                }
                async with session.post(f"{daemon.url}/process", json=body) as r:
                    assert (await r.json())["status"] == "completed"

            for batch in range(10):
                await asyncio.gather(*(one(batch * 10 + i) for i in range(10)))
        await asyncio.sleep(3)
        fds1 = len(os.listdir(f"/proc/{pid}/fd"))
        report.add(
            "footprint",
            "after 100 processes and 1 GiB of logs: RSS",
            mb(daemon.rss()),
            f"peak {mb(daemon.peak_rss())}",
            None,
            "",
        )
        report.add(
            "footprint",
            "after: fds, zombies",
            f"{fds1} fds (idle {fds0}), {zombies_of(pid)} zombies",
            "",
            None,
            "fds back to idle, 0 zombies",
        )


async def soak(report: Report) -> None:
    seconds = int(os.environ.get("BENCH_SOAK_SECONDS", "300"))
    lines = seconds * 10
    command = f"i=0; while [ $i -lt {lines} ]; do echo soak-$i; i=$((i+1)); sleep 0.1; done"
    with Daemon(env={"SHELL": SHELL}) as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            async with session.post(f"{daemon.url}/process", json={"command": command, "name": "soak"}) as r:
                await r.read()
            seen, keepalives, gaps = [], 0, 0
            t0 = time.monotonic()
            async with session.get(f"{daemon.url}/process/soak/logs/stream") as r:
                async for line in r.content:
                    text = line.decode().strip()
                    if text.startswith("stdout:soak-"):
                        seen.append(int(text.split("-", 1)[1]))
                    elif "keepalive" in text:
                        keepalives += 1
            elapsed = time.monotonic() - t0
            gaps = sum(1 for a, b in itertools.pairwise(seen) if b != a + 1)
    intact = seen == list(range(lines))
    report.add(
        "soak",
        f"/logs/stream held {seconds} s",
        f"{elapsed:.0f} s, {len(seen)}/{lines} lines",
        "",
        None,
        "never cut, every line",
        "intact" if intact else f"BROKEN: {gaps} gaps",
    )


# Lines of 1-200 bytes of mixed 1-4 byte characters, so some cross every 64 KiB boundary.
COMPLETENESS_SCRIPT = r"""BEGIN {
    srand(seed); split("a b é ü € 中 😀 𝄞 x y", chars, " ");
    for (i = 0; i < n; i++) {
        line = i ":"; len = int(rand() * 60);
        for (j = 0; j < len; j++) line = line chars[int(rand() * 10) + 1];
        if (rand() < 0.3) print line > "/dev/stderr"; else print line;
    }
}"""


def completeness_expected(seed: int, n: int) -> tuple[bytes, bytes]:
    out = subprocess.run(
        ["awk", "-v", f"seed={seed}", "-v", f"n={n}", COMPLETENESS_SCRIPT], capture_output=True, check=True
    )
    return out.stdout, out.stderr


def line_faults(expected: bytes, got: str) -> tuple[int, int, int]:
    """(lost, duplicated, garbled) lines of `got` against `expected`."""
    want = expected.decode().splitlines()
    have = got.splitlines()
    wanted = set(want)
    counts: dict[str, int] = {}
    for line in have:
        counts[line] = counts.get(line, 0) + 1
    lost = sum(1 for line in want if line not in counts)
    duplicated = sum(c - 1 for c in counts.values() if c > 1)
    garbled = sum(1 for line in have if line not in wanted)
    return lost, duplicated, garbled


async def log_completeness(report: Report) -> None:
    procs = int(os.environ.get("BENCH_COMPLETENESS_PROCS", "1000"))
    jobs = [(seed, 1000 + seed * 7919 % 9001) for seed in range(procs)]  # 1,000 to 10,000 lines each
    faults = [0, 0, 0]
    lines = 0
    with Daemon(env={"SHELL": SHELL}) as daemon:
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            gate = asyncio.Semaphore(8)

            async def one(seed: int, n: int) -> None:
                nonlocal lines
                command = f"awk -v seed={seed} -v n={n} '{COMPLETENESS_SCRIPT}'"
                async with gate:
                    async with session.post(
                        f"{daemon.url}/process",
                        json={"command": command, "name": f"c{seed}", "waitForCompletion": True},
                    ) as r:
                        assert r.status == 200, await r.text()
                    async with session.get(f"{daemon.url}/process/c{seed}/logs") as r:
                        logs = await r.json()
                want_out, want_err = await asyncio.to_thread(completeness_expected, seed, n)
                for want, got in ((want_out, logs["stdout"]), (want_err, logs["stderr"])):
                    for i, count in enumerate(line_faults(want, got)):
                        faults[i] += count
                lines += n

            t0 = time.perf_counter()
            await asyncio.gather(*(one(seed, n) for seed, n in jobs))
            seconds = time.perf_counter() - t0
    lost, duplicated, garbled = faults
    report.add(
        "complete",
        f"{procs} commands, {lines} lines, stdout+stderr, /logs",
        f"{lost} lost, {duplicated} dup, {garbled} garbled",
        "expected output",
        None,
        "exactly 0",
        f"{procs / seconds:.0f} commands/s (8 clients)",
    )


async def stream_reconnect(report: Report) -> None:
    lines = 20000
    command = (
        f'awk \'BEGIN {{ for (i = 0; i < {lines}; i++) {{ print "r-" i "-€"; fflush(); '
        f'if (i % 200 == 0) system("sleep 0.01") }} }}\''
    )
    with Daemon(env={"SHELL": SHELL}) as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            async with session.post(f"{daemon.url}/process", json={"command": command, "name": "resume"}) as r:
                assert r.status == 200, await r.text()
            first = 0
            async with session.get(f"{daemon.url}/process/resume/logs/stream") as r:
                async for line in r.content:
                    if line.startswith(b"stdout:"):
                        first += 1
                        if first == lines // 3:
                            break  # the client goes away mid-output
            t0 = time.perf_counter()
            seen: list[str] = []
            async with session.get(f"{daemon.url}/process/resume/logs/stream") as r:
                async for line in r.content:
                    if line.startswith(b"stdout:"):
                        seen.append(line.decode()[len("stdout:") :].rstrip("\n"))
            seconds = time.perf_counter() - t0
    expected = [f"r-{i}-€" for i in range(lines)]
    unique = set(seen)
    gaps = sum(1 for line in expected if line not in unique)
    dups = len(seen) - len(unique)
    report.add(
        "complete",
        f"log stream dropped after {first} of {lines} lines, reconnected",
        f"{gaps} gaps, {dups} dup",
        "",
        None,
        "0",
        f"in order; replay + follow {ms(seconds)}" if seen == expected else "OUT OF ORDER",
    )


PARTS = os.environ.get("BENCH_LOAD_PARTS", "")  # e.g. "big_output,soak" to run only those


async def main(report: Report) -> None:
    if PARTS:
        for name in PARTS.split(","):
            await globals()[name](report)
        return
    await health_throughput(report)
    await exec_concurrency(report)
    await big_output(report)
    await line_size_curve(report)
    await trickle(report)
    await log_completeness(report)
    await stream_reconnect(report)
    await large_listing(report)
    await port_detection(report)
    await footprint(report)
    await soak(report)
