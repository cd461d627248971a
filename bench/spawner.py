"""Baseline for exec latency: a helper, pinned like the daemon, that spawns
`SHELL -c <command>` with asyncio for each command line it reads on stdin and
answers with the elapsed seconds. Interleaving its runs with the daemon's cancels
the drift of a noisy machine."""

from __future__ import annotations

import asyncio
import os
import sys
import time


async def spawn(shell: str, command: str) -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        shell, "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await proc.communicate()
    return time.perf_counter() - t0


async def batch(shell: str, concurrency: int, total: int, command: str) -> str:
    """`total` spawns, `concurrency` at a time: "<seconds> <latency>..." on one line."""
    latencies: list[float] = []
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            latencies.append(await spawn(shell, command))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return " ".join(map(str, [time.perf_counter() - t0, *latencies]))


async def main(shell: str) -> None:
    # A line is a command to time once, or "BATCH <concurrency> <total> <command>".
    for line in sys.stdin:
        command = line.rstrip("\n")
        if command.startswith("BATCH "):
            _, concurrency, total, command = command.split(" ", 3)
            sys.stdout.write(await batch(shell, int(concurrency), int(total), command) + "\n")
        else:
            sys.stdout.write(f"{await spawn(shell, command)}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    cpu = int(os.environ.get("PIN_CPU", "-1"))
    if cpu >= 0 and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(main(sys.argv[1]))
