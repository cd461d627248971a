"""Filesystem benchmarks: big uploads and downloads, memory, small-file latency.

Baselines run in the same run: a minimal aiohttp server (baseline_server.py) pinned like
the daemon, with a raw PUT that streams to a file and a FileResponse download.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
from harness import BaselineServer, Daemon, Report, mb, ms, summarize

SIZE = 256 * 1024 * 1024
CHUNK = 1024 * 1024
_BLOCK = os.urandom(CHUNK)


async def body(total: int):
    sent = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        yield _BLOCK[:n]
        sent += n


async def timed(coro) -> float:
    t0 = time.perf_counter()
    await coro
    return time.perf_counter() - t0


async def put(session: aiohttp.ClientSession, url: str, data, headers=None) -> None:
    async with session.put(url, data=data, headers=headers) as resp:
        assert resp.status == 200, await resp.text()


async def upload_form(session, url: str, total: int) -> None:
    form = aiohttp.FormData()
    form.add_field("permissions", "0644")
    form.add_field("file", body(total), filename="blob.bin", content_type="application/octet-stream")
    await put(session, url, form)


async def upload_parts(
    session, base: str, target: str, total: int, parallel: int = 2, part_size: int = 64 << 20
) -> None:
    async with session.post(f"{base}/filesystem-multipart/initiate/{target}") as resp:
        upload_id = (await resp.json())["uploadId"]
    numbers = list(range(1, total // part_size + 1))
    results = []

    async def one(n: int) -> None:
        form = aiohttp.FormData()
        form.add_field("file", body(part_size), filename="part", content_type="application/octet-stream")
        async with session.put(f"{base}/filesystem-multipart/{upload_id}/part?partNumber={n}", data=form) as resp:
            results.append(await resp.json())

    for i in range(0, len(numbers), parallel):
        await asyncio.gather(*(one(n) for n in numbers[i : i + parallel]))
    parts = sorted(({"partNumber": r["partNumber"], "etag": r["etag"]} for r in results), key=lambda p: p["partNumber"])
    async with session.post(f"{base}/filesystem-multipart/{upload_id}/complete", json={"parts": parts}) as resp:
        assert resp.status == 200, await resp.text()


async def download(session, url: str, headers=None) -> int:
    got = 0
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_chunked(CHUNK):
            got += len(chunk)
    return got


async def transfers(report: Report) -> None:
    with Daemon() as daemon:
        baseline = BaselineServer(daemon.workdir)
        await baseline.wait()
        target = daemon.workdir / "big.bin"
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            raw_headers = {"Content-Type": "application/octet-stream"}
            # Warm-up, then best of 2 for each (the machine is noisy).
            await put(session, f"{baseline.url}/raw/warm.bin", body(32 << 20))
            await put(session, f"{daemon.url}/filesystem/{target}", body(32 << 20), raw_headers)
            cases = {
                "raw body": lambda: put(session, f"{daemon.url}/filesystem/{target}", body(SIZE), raw_headers),
                "multipart form": lambda: upload_form(session, f"{daemon.url}/filesystem/{target}", SIZE),
                "S3-style parts, 4x64 MiB, parallel 2": lambda: upload_parts(session, daemon.url, target, SIZE),
            }
            for name, make in cases.items():
                # Baseline and case alternate, best of 3 each: this machine drifts a lot.
                base_up, seconds = float("inf"), float("inf")
                for _ in range(3):
                    base_up = min(base_up, await timed(put(session, f"{baseline.url}/raw/base.bin", body(SIZE))))
                    seconds = min(seconds, await timed(make()))
                assert target.stat().st_size == SIZE
                report.add(
                    "upload",
                    f"256 MiB {name}",
                    f"{SIZE / seconds / 1e6:.0f} MB/s",
                    f"raw PUT {SIZE / base_up / 1e6:.0f} MB/s",
                    base_up / seconds,
                    ">= 0.8x",
                )
            # What durability costs: the minimal handler made atomic (temp + fsync + rename).
            atomic, ours = float("inf"), float("inf")
            for _ in range(3):
                atomic = min(atomic, await timed(put(session, f"{baseline.url}/atomic/base.bin", body(SIZE))))
                ours = min(ours, await timed(cases["raw body"]()))
            report.add(
                "upload",
                "256 MiB raw body vs an atomic minimal PUT",
                f"{SIZE / ours / 1e6:.0f} MB/s",
                f"temp+fsync+rename {SIZE / atomic / 1e6:.0f} MB/s",
                atomic / ours,
            )
            os.replace(target, daemon.workdir / "base.bin")
            os.link(daemon.workdir / "base.bin", target)
            octet = {"Accept": "application/octet-stream"}
            await download(session, f"{baseline.url}/file/base.bin")
            base_down, ours = float("inf"), float("inf")
            for _ in range(3):
                base_down = min(base_down, await timed(download(session, f"{baseline.url}/file/base.bin")))
                ours = min(ours, await timed(download(session, f"{daemon.url}/filesystem/{target}", octet)))
            report.add(
                "download",
                "256 MiB octet-stream",
                f"{SIZE / ours / 1e6:.0f} MB/s",
                f"FileResponse {SIZE / base_down / 1e6:.0f} MB/s",
                base_down / ours,
                ">= 0.9x",
            )
        baseline.close()


async def memory(report: Report) -> None:
    gib = 1024 * 1024 * 1024
    with Daemon() as daemon:
        target = daemon.workdir / "gig.bin"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            before = daemon.rss()
            peak = before
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, daemon.rss())
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            await put(
                session, f"{daemon.url}/filesystem/{target}", body(gib), {"Content-Type": "application/octet-stream"}
            )
            up_peak = peak
            got = await download(session, f"{daemon.url}/filesystem/{target}", {"Accept": "application/octet-stream"})
            done.set()
            await sampler
            assert got == gib
            report.add("memory", "RSS growth, 1 GiB upload (raw body)", mb(up_peak - before), "", None, "<= 32 MiB")
            report.add("memory", "RSS growth, 1 GiB download", mb(peak - before), "", None, "<= 32 MiB")
            target.unlink()


async def small_files(report: Report, runs: int = 200) -> None:
    sizes = [10, 100, 1024, 10 * 1024, 100 * 1024]
    with Daemon() as daemon:
        baseline = BaselineServer(daemon.workdir)
        await baseline.wait()
        async with aiohttp.ClientSession() as session:

            async def cycle(size: int, write_url: str, url: str, into: dict[str, list[float]]) -> None:
                """Write, read and delete one file; the three latencies."""
                t0 = time.perf_counter()
                async with session.put(write_url, json={"content": "x" * size}) as r:
                    assert r.status == 200, await r.text()
                t1 = time.perf_counter()
                async with session.get(url) as r:
                    assert len((await r.json())["content"]) == size
                t2 = time.perf_counter()
                async with session.delete(url) as r:
                    assert r.status == 200
                t3 = time.perf_counter()
                for op, seconds in (("write", t1 - t0), ("read", t2 - t1), ("delete", t3 - t2)):
                    into[op].append(seconds)

            for size in sizes:
                ours: dict[str, list[float]] = {"write": [], "read": [], "delete": []}
                theirs: dict[str, list[float]] = {"write": [], "read": [], "delete": []}
                for i in range(runs + 20):  # interleaved; the first 20 are a warm-up
                    path = f"{daemon.workdir}/small-{size}-{i}.txt"
                    name = f"base-{size}-{i}.txt"
                    await cycle(
                        size,
                        f"{daemon.url}/filesystem/{path}",
                        f"{daemon.url}/filesystem/{path}",
                        ours if i >= 20 else {"write": [], "read": [], "delete": []},
                    )
                    await cycle(
                        size,
                        f"{baseline.url}/small/{name}",
                        f"{baseline.url}/small/{name}",
                        theirs if i >= 20 else {"write": [], "read": [], "delete": []},
                    )
                for op in ours:
                    p50, p99 = summarize(ours[op])
                    b50, b99 = summarize(theirs[op])
                    report.add(
                        "smallfile",
                        f"{op} {size} B p50 (p99)",
                        f"{ms(p50)} ({ms(p99)})",
                        f"minimal aiohttp {ms(b50)} ({ms(b99)})",
                        p50 / b50,
                    )
        baseline.close()


async def main(report: Report) -> None:
    await transfers(report)
    await memory(report)
    await small_files(report)


if __name__ == "__main__":
    asyncio.run(main(Report()))
