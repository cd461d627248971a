"""Issue 16's exact edits and metrics: `str_replace` on a 1 MB file, and `GET /metrics`.

Baselines in the same run, on the same daemon: a `PUT /filesystem` of the same 1 MB (the
writer an edit goes through, without the read, match and hash), and `GET /health` (the
cheapest route: what HTTP alone costs).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from harness import Daemon, Report, ms, summarize

FILE_BYTES = 1 << 20
RUNS = 200
WARMUP = 20


async def timed_post(session: aiohttp.ClientSession, url: str, body: dict) -> float:
    t0 = time.perf_counter()
    async with session.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
    return time.perf_counter() - t0


async def timed_get(session: aiohttp.ClientSession, url: str) -> float:
    t0 = time.perf_counter()
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
    return time.perf_counter() - t0


async def edits(report: Report) -> None:
    with Daemon() as daemon:
        lines = [f"line {i:06d} of a source file, long enough to look like code;\n" for i in range(17_000)]
        text = "".join(lines)[:FILE_BYTES]
        target = daemon.workdir / "big.py"
        target.write_text(text)
        size = target.stat().st_size
        async with aiohttp.ClientSession() as session:
            ours: list[float] = []
            theirs: list[float] = []
            for i in range(RUNS + WARMUP):
                # Replace one line in the middle and back: the file stays 1 MB, the text unique.
                old, new = ("line 008000 of", "LINE 008000 of") if i % 2 == 0 else ("LINE 008000 of", "line 008000 of")
                seconds = await timed_post(
                    session, f"{daemon.url}/edit/str-replace", {"path": str(target), "oldStr": old, "newStr": new}
                )
                put_started = time.perf_counter()
                async with session.put(
                    f"{daemon.url}/filesystem/{daemon.workdir}/copy.py", json={"content": text}
                ) as r:
                    assert r.status == 200, await r.text()
                put_seconds = time.perf_counter() - put_started
                if i >= WARMUP:
                    ours.append(seconds)
                    theirs.append(put_seconds)
            p50, p99 = summarize(ours)
            b50, _ = summarize(theirs)
            report.add(
                "edit",
                f"str_replace on a {size / (1 << 20):.1f} MB file p50",
                f"{ms(p50)} (p99 {ms(p99)})",
                f"PUT of the same 1 MB {ms(b50)}",
                p50 / b50,
                "< 2x the PUT",
            )
            views = [await timed_post(session, f"{daemon.url}/edit/view", {"path": str(target),
                                                                            "viewRange": [7990, 8010]})
                     for _ in range(RUNS)]  # fmt: skip
            report.add("edit", "view of 21 lines of the 1 MB file p50", ms(summarize(views)[0]))


async def metrics(report: Report) -> None:
    with Daemon() as daemon:
        async with aiohttp.ClientSession() as session:
            for n in range(10):  # managed processes to measure: each adds a tree to read
                body = {"command": "sleep 600", "name": f"bench-sleep-{n}"}
                async with session.post(f"{daemon.url}/process", json=body) as resp:
                    assert resp.status == 200, await resp.text()
            samples: dict[str, list[float]] = {"json": [], "prometheus": [], "health": []}
            for i in range(RUNS + WARMUP):
                for kind, url in (
                    ("json", f"{daemon.url}/metrics"),
                    ("prometheus", f"{daemon.url}/metrics?format=prometheus"),
                    ("health", f"{daemon.url}/health"),
                ):
                    seconds = await timed_get(session, url)
                    if i >= WARMUP:
                        samples[kind].append(seconds)
            health, _ = summarize(samples["health"])
            for kind in ("json", "prometheus"):
                p50, p99 = summarize(samples[kind])
                report.add(
                    "metrics",
                    f"GET /metrics ({kind}, 10 managed processes) p50",
                    f"{ms(p50)} (p99 {ms(p99)})",
                    f"GET /health {ms(health)}",
                    p50 / health,
                    "< 10 ms",
                )
            for n in range(10):
                async with session.delete(f"{daemon.url}/process/bench-sleep-{n}/kill"):
                    pass


async def main(report: Report) -> None:
    await edits(report)
    await metrics(report)


if __name__ == "__main__":
    asyncio.run(main(Report()))
