"""Shell session benchmarks: a command in a persistent shell against a spawned process.

- exec: `echo hi` through POST /session/{id}/exec (the shell is already there: no spawn),
  against POST /process with waitForCompletion (a spawn per command), alternating in the
  same daemon and the same run; the baseline is the process route.
- memory: the daemon's RSS with the sessions it allows open (SANDBOX_SESSION_MAX), each
  having run a command, against the same daemon with none.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
from harness import Daemon, Report, mb, ms, summarize

COMMAND = "echo hi"
SHELL = "/bin/sh"  # the process route's shell, as bench_process starts it
MEMORY_SESSIONS = 32


async def exec_latency(report: Report, runs: int) -> None:
    with Daemon(env={"SHELL": SHELL}) as daemon:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{daemon.url}/session", json={"name": "bench"}) as resp:
                assert resp.status == 200, await resp.text()
            session_times, process_times = [], []
            for i in range(runs + 50):  # the first 50 are a warm-up
                t0 = time.perf_counter()
                async with http.post(f"{daemon.url}/session/bench/exec", json={"command": COMMAND}) as resp:
                    result = await resp.json()
                elapsed = time.perf_counter() - t0
                assert result["output"] == "hi\n" and result["exitCode"] == 0, result
                t1 = time.perf_counter()
                body = {"command": COMMAND, "waitForCompletion": True}
                async with http.post(f"{daemon.url}/process", json=body) as resp:
                    done = await resp.json()
                spawned = time.perf_counter() - t1
                assert done["status"] == "completed", done
                if i >= 50:
                    session_times.append(elapsed)
                    process_times.append(spawned)
    s50, s99 = summarize(session_times)
    p50, p99 = summarize(process_times)
    note = "baseline: POST /process waitForCompletion, alternating in the same daemon"
    report.add(
        "sessions", f"exec '{COMMAND}' p50 ({runs} runs)", ms(s50), f"process {ms(p50)}", s50 / p50, "< 1x", note
    )
    report.add("sessions", f"exec '{COMMAND}' p99", ms(s99), f"process {ms(p99)}", s99 / p99, "< 1x")


async def session_memory(report: Report) -> None:
    with Daemon(env={"SANDBOX_SESSION_MAX": str(MEMORY_SESSIONS)}) as daemon:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{daemon.url}/session") as resp:
                assert resp.status == 200
            await asyncio.sleep(0.5)
            before = daemon.rss()
            for i in range(MEMORY_SESSIONS):
                async with http.post(f"{daemon.url}/session", json={"name": f"m{i}"}) as resp:
                    assert resp.status == 200, await resp.text()
                async with http.post(f"{daemon.url}/session/m{i}/exec", json={"command": "seq 1 20000"}) as resp:
                    assert (await resp.json())["truncated"]
            async with http.post(f"{daemon.url}/session", json={"name": "over"}) as resp:
                assert resp.status == 429
            after = daemon.rss()
    growth = after - before
    report.add(
        "sessions",
        f"daemon RSS with {MEMORY_SESSIONS} sessions",
        f"+{mb(growth)}",
        f"{mb(before)} with none",
        after / before,
        "",
        f"{mb(growth / MEMORY_SESSIONS)} per session, each after a truncated output; one more is a 429",
    )


async def main(report: Report) -> None:
    runs = int(os.environ.get("BENCH_SESSION_RUNS", "1000"))
    await exec_latency(report, runs)
    await session_memory(report)


if __name__ == "__main__":
    asyncio.run(main(Report()))
