"""Baseline for exec latency: a helper, pinned like the daemon, that spawns
`SHELL -c <command>` with asyncio for each command line it reads on stdin and
answers with the elapsed seconds. Interleaving its runs with the daemon's cancels
the drift of a noisy machine."""

from __future__ import annotations

import asyncio
import os
import sys
import time


async def main(shell: str) -> None:
    for line in sys.stdin:
        command = line.rstrip("\n")
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            shell, "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        await proc.communicate()
        sys.stdout.write(f"{time.perf_counter() - t0}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    cpu = int(os.environ.get("PIN_CPU", "-1"))
    if cpu >= 0 and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(main(sys.argv[1]))
