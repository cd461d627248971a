"""Issue 16's retry-safe requests: what an `Idempotency-Key` costs `POST /process`.

Interleaved in the same run, on the same daemon: `POST /process` (`echo hi`, without
waiting) with no key, with a fresh key each time (a first request: claimed, the body
hashed, the answer kept and journaled), and a retry of an answered key (the replay).
The three take turns in a rotating order, with a pause between requests (the end of the
process just spawned would otherwise weigh on the next request).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
from harness import Daemon, Report, ms, summarize

RUNS = 300
WARMUP = 30
PAUSE = 0.01


async def timed(session: aiohttp.ClientSession, url: str, body: dict, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
    return time.perf_counter() - t0


async def main(report: Report) -> None:
    with Daemon() as daemon:
        url = f"{daemon.url}/process"
        body = {"command": "echo hi"}
        samples: dict[str, list[float]] = {"none": [], "fresh": [], "replay": []}
        async with aiohttp.ClientSession() as session:
            replayed = {"Idempotency-Key": str(uuid.uuid4())}
            await timed(session, url, body, replayed)
            for i in range(RUNS + WARMUP):
                runs = (
                    ("none", {}),
                    ("fresh", {"Idempotency-Key": str(uuid.uuid4())}),
                    ("replay", replayed),
                )
                shift = i % len(runs)  # each kind in each position in turn: what ran just before weighs on it
                for kind, headers in runs[shift:] + runs[:shift]:
                    seconds = await timed(session, url, body, headers)
                    await asyncio.sleep(PAUSE)  # the process ends meanwhile, not during the next request
                    if i >= WARMUP:
                        samples[kind].append(seconds)
        none, _ = summarize(samples["none"])
        for kind, case in (("fresh", "with a new Idempotency-Key"), ("replay", "replayed (same key again)")):
            p50, p99 = summarize(samples[kind])
            report.add(
                "idem",
                f"POST /process {case} p50",
                f"{ms(p50)} (p99 {ms(p99)})",
                f"no key {ms(none)}",
                p50 / none,
                "< 1.1x" if kind == "fresh" else "< 1x",
            )


if __name__ == "__main__":
    asyncio.run(main(Report()))
