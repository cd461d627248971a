"""Issue 16's output by offset: reading 1 MB of a 100 MB log by offset, against a full
`GET /process/{id}/logs` of that log (what a client without offsets must do to see it all),
in the same run, on the same daemon.

The daemon keeps the whole 100 MB (no file cap) and answers `/logs` without its 4 MiB
response cap, so the full read really is 100 MB; the default `/logs` (the last 4 MiB of
each stream) is shown too.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from harness import Daemon, Report, ms, summarize

LOG_BYTES = 100 * (1 << 20)
WINDOW = 1 << 20
RUNS = 50
FULL_RUNS = 5


async def timed_get(session: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    async with session.get(url, params=params) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
    return time.perf_counter() - t0


async def write_log(session: aiohttp.ClientSession, url: str, command: str) -> None:
    async with session.post(f"{url}/process", json={"command": command, "name": "big"}) as resp:
        assert resp.status == 200, await resp.text()
    async with session.get(f"{url}/process/big/wait", params={"timeout": "300"}) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "completed"


async def main(report: Report) -> None:
    env = {
        "SANDBOX_MAX_LOG_FILE_BYTES": str(4 * LOG_BYTES),
        "SANDBOX_MAX_LOG_BYTES_TOTAL": "0",
        "SANDBOX_MAX_LOGS_RESPONSE_BYTES": "0",  # the full /logs answers everything
    }
    command = f"yes 'a line of output, about sixty bytes long, as a build prints' | head -c {LOG_BYTES}"
    with Daemon(env) as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await write_log(session, daemon.url, command)
            logs = f"{daemon.url}/process/big/logs"
            one: list[float] = []
            incremental: list[float] = []
            for i in range(RUNS):
                offset = (i * 7 * WINDOW) % (LOG_BYTES - WINDOW)  # here and there in the log
                one.append(await timed_get(session, logs, {"stdoutOffset": str(offset), "maxBytes": str(WINDOW)}))
                t0 = time.perf_counter()
                for step in range(16):  # 1 MB as an agent reads it: 64 KiB at a time
                    params = {"stdoutOffset": str(offset + step * 65536), "maxBytes": "65536"}
                    async with session.get(logs, params=params) as r:
                        assert r.status == 200
                        await r.read()
                incremental.append(time.perf_counter() - t0)
            full = [await timed_get(session, logs) for _ in range(FULL_RUNS)]
        full50, _ = summarize(full)
        p50, p99 = summarize(one)
        report.add(
            "offsets",
            "1 MB of a 100 MB log by offset (1 read) p50",
            f"{ms(p50)} (p99 {ms(p99)})",
            f"full /logs of 100 MB {ms(full50)}",
            p50 / full50,
            "< 1/50 of the full read",
        )
        i50, i99 = summarize(incremental)
        report.add(
            "offsets",
            "1 MB by offset as 16 reads of 64 KiB p50",
            f"{ms(i50)} (p99 {ms(i99)})",
            f"full /logs of 100 MB {ms(full50)}",
            i50 / full50,
        )
    with Daemon() as daemon:  # the default settings: /logs answers the last 4 MiB of each stream
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await write_log(session, daemon.url, command)
            tails = [await timed_get(session, f"{daemon.url}/process/big/logs") for _ in range(RUNS)]
        report.add("offsets", "default /logs of that log (last 4 MiB kept to answer) p50", ms(summarize(tails)[0]))


if __name__ == "__main__":
    asyncio.run(main(Report()))
