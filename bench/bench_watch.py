"""Watch benchmarks: completeness against inotifywait, and write-to-event latency.

- a burst: 200 nested directories made with `mkdir -p` (4 levels each) and 5,000 file
  writes spread over them, while both our recursive watch and `inotifywait -m -r`
  watch the tree: the paths we report, as a share of the paths inotifywait reports;
- latency: 200 single writes, 20 ms apart, each timed from the write to its event.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from harness import Daemon, Report, ms, percentile


async def open_watch(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    resp = await session.get(url)
    assert resp.status == 200
    assert (await resp.content.readline()).strip() == b"[keepalive]"  # armed
    return resp


async def collect(resp: aiohttp.ClientResponse, sink: set[str], stamps: dict[str, float], quiet: float) -> None:
    """Read events until `quiet` seconds pass without one."""
    while True:
        try:
            line = await asyncio.wait_for(resp.content.readline(), quiet)
        except TimeoutError:
            return
        if not line or line.startswith(b"[keepalive]"):
            if not line:
                return
            continue
        event = json.loads(line)
        path = f"{event['path']}/{event['name']}"
        sink.add(path)
        stamps.setdefault(path, time.perf_counter())


def burst(root: Path) -> None:
    for i in range(200):
        leaf = root / f"d{i}" / "a" / "b" / "c"
        os.makedirs(leaf)
        for j in range(25):
            (leaf / f"f{j}.txt").write_text("x")


async def completeness(report: Report, session: aiohttp.ClientSession, daemon: Daemon) -> None:
    if shutil.which("inotifywait") is None:
        report.add("watch", "skipped: inotifywait (inotify-tools) is not installed", "")
        return
    root = daemon.workdir / "burst"
    root.mkdir()
    log = daemon.workdir / "inotify.log"
    waiter = subprocess.Popen(
        [
            "inotifywait",
            "-m",
            "-r",
            "-q",
            "-e",
            "create,modify,delete,moved_to,moved_from",
            "--format",
            "%w%f",
            str(root),
        ],
        stdout=open(log, "w"),
        stderr=subprocess.DEVNULL,
    )
    resp = await open_watch(session, f"{daemon.url}/watch/filesystem/{root}/**")
    await asyncio.sleep(1.0)  # inotifywait has no readiness signal
    seen: set[str] = set()
    reader = asyncio.create_task(collect(resp, seen, {}, quiet=3.0))
    await asyncio.to_thread(burst, root)
    await reader
    waiter.terminate()
    waiter.wait()
    theirs = {line for line in log.read_text().split("\n") if line}
    resp.close()
    missed = theirs - seen
    created = {str(p) for p in root.rglob("*")}
    report.add(
        "watch",
        "burst: 200 mkdir -p + 5,000 writes, paths seen",
        f"{len(seen & theirs)}/{len(theirs)}",
        "inotifywait",
        len(seen & theirs) / max(1, len(theirs)),
        "1.0",
        note=f"missed {len(missed)}; we saw {len(seen & created)}/{len(created)} of what was made",
    )


async def latency(report: Report, session: aiohttp.ClientSession, daemon: Daemon) -> None:
    """200 writes, 20 ms apart, each timed from the write to its event: ours, then
    inotifywait's (its line on stdout) on the same kind of directory, in the same run."""
    root = daemon.workdir / "latency"
    root.mkdir()
    resp = await open_watch(session, f"{daemon.url}/watch/filesystem/{root}")

    async def our_event(name: str) -> None:
        while True:
            line = await asyncio.wait_for(resp.content.readline(), 5)
            if line.startswith(b"{") and json.loads(line)["name"] == name:
                return

    delays = await timed_writes(root, "w", our_event)
    resp.close()
    theirs: list[float] = []
    if shutil.which("inotifywait") is not None:
        other = daemon.workdir / "latency-inotifywait"
        other.mkdir()
        waiter = await asyncio.create_subprocess_exec(
            "inotifywait",
            "-m",
            "-e",
            "close_write",
            "--format",
            "%f",
            str(other),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert waiter.stdout is not None and waiter.stderr is not None
        while b"Watches established" not in await waiter.stderr.readline():
            pass

        async def their_event(name: str) -> None:
            assert waiter.stdout is not None
            while (await asyncio.wait_for(waiter.stdout.readline(), 5)).strip().decode() != name:
                pass

        theirs = await timed_writes(other, "w", their_event)
        waiter.terminate()
        await waiter.wait()
    base50 = ms(percentile(theirs, 50)) if theirs else ""
    base99 = ms(percentile(theirs, 99)) if theirs else ""
    ratio = percentile(delays, 50) / percentile(theirs, 50) if theirs else None
    report.add(
        "watch",
        "write-to-event latency p50 (200 writes)",
        ms(percentile(delays, 50)),
        f"inotifywait {base50}",
        ratio,
        "p50 <= 1.5 ms",
    )
    report.add("watch", "write-to-event latency p99", ms(percentile(delays, 99)), f"inotifywait {base99}")


async def timed_writes(root: Path, prefix: str, event: Callable[[str], Awaitable[None]]) -> list[float]:
    delays = []
    for i in range(200):
        path = root / f"{prefix}{i}.txt"
        written = time.perf_counter()
        path.write_text("x")
        await event(path.name)
        delays.append(time.perf_counter() - written)
        await asyncio.sleep(0.02)
    return delays


async def main(report: Report) -> None:
    with Daemon() as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            await completeness(report, session, daemon)
            await latency(report, session, daemon)


if __name__ == "__main__":
    asyncio.run(main(Report()))
