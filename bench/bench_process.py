"""Process benchmarks: exec latency, output stream throughput, daemon memory.

- exec: POST /process waitForCompletion, 1,000 sequential runs per command, against
  spawning the same `sh -c` with asyncio in this process.
- stream: 256 MB of stdout over /logs/stream and over the NDJSON exec stream,
  against reading the same command's raw pipe; and the daemon's RSS growth.
- idle: the daemon's RSS after start-up.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from harness import Daemon, Report, mb, ms, summarize

# The original's own benchmark cases (sandbox-api/src/api/api_benchmark_test.go).
EXEC_COMMANDS = ["echo 'hello world'", "pwd", "seq 1 10", "seq 1 100", "seq 1 1000"]
STREAM_BYTES = 256 * 1024 * 1024
# 256 MiB in lines of 128 bytes: a realistic log shape (not one giant line).
STREAM_COMMAND = f"yes \"$(printf '%0127d' 0)\" | head -c {STREAM_BYTES}"


SHELL = "/bin/sh"  # the daemon is started with SHELL=/bin/sh, as in most images


async def spawn_direct(command: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        SHELL, "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return out


class DirectSpawner:
    """The baseline helper (spawner.py), on the daemon's CPU: children share their parent's core."""

    def __init__(self, pinned: bool = True) -> None:
        pin = "0" if pinned and os.environ.get("BENCH_PIN", "1") == "1" else "-1"
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("spawner.py")), SHELL],
            env={**os.environ, "PIN_CPU": pin},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def run(self, command: str) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def batch(self, concurrency: int, total: int, command: str) -> tuple[float, list[float]]:
        """Seconds for `total` spawns `concurrency` at a time, and their latencies."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"BATCH {concurrency} {total} {command}\n")
        self.proc.stdin.flush()
        seconds, *latencies = map(float, self.proc.stdout.readline().split())
        return seconds, latencies

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


async def exec_latency(report: Report, runs: int) -> None:
    spawner = DirectSpawner()
    with Daemon(env={"SHELL": SHELL}) as daemon:
        async with aiohttp.ClientSession() as session:
            for command in EXEC_COMMANDS:
                body = {"command": command, "waitForCompletion": True}
                daemon_times, direct_times = [], []
                for i in range(runs + 50):  # the first 50 are a warm-up
                    t0 = time.perf_counter()
                    async with session.post(f"{daemon.url}/process", json=body) as resp:
                        result = await resp.json()
                    elapsed = time.perf_counter() - t0
                    assert result["status"] == "completed", result
                    direct = spawner.run(command)
                    if i >= 50:
                        daemon_times.append(elapsed)
                        direct_times.append(direct)
                d50, d99 = summarize(daemon_times)
                b50, b99 = summarize(direct_times)
                report.add("exec", f"{command} p50 ({runs} runs)", ms(d50), f"asyncio {ms(b50)}", d50 / b50, "<= 1.5x")
                report.add("exec", f"{command} p99", ms(d99), f"asyncio {ms(b99)}", d99 / b99)
    spawner.close()


async def raw_pipe_seconds() -> float:
    proc = await asyncio.create_subprocess_exec("sh", "-c", STREAM_COMMAND, stdout=asyncio.subprocess.PIPE)
    t0 = time.perf_counter()
    total = 0
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(1 << 20):
        total += len(chunk)
    await proc.wait()
    assert total == STREAM_BYTES, total
    return time.perf_counter() - t0


async def stream_throughput(report: Report) -> None:
    # The raw pipe is measured again right before each case: this machine drifts a lot.
    baseline = min([await raw_pipe_seconds() for _ in range(2)])
    # No cap on the log files here: the replay below must find all 256 MiB on disk.
    with Daemon(env={"SANDBOX_MAX_LOG_FILE_BYTES": "0"}) as daemon:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            rss_before = daemon.rss()
            # NDJSON exec stream: the output arrives as it is produced.
            t0 = time.perf_counter()
            received = 0
            peak = rss_before
            async with session.post(
                f"{daemon.url}/process",
                json={"command": STREAM_COMMAND, "name": "ndjson"},
                headers={"Accept": "text/event-stream"},
            ) as resp:
                async for line in resp.content.iter_chunked(1 << 20):
                    received += len(line)
                    peak = max(peak, daemon.rss())
            ndjson_seconds = time.perf_counter() - t0
            report.add(
                "stream",
                "256 MiB stdout via NDJSON exec stream",
                f"{STREAM_BYTES / ndjson_seconds / 1e6:.0f} MB/s",
                f"raw pipe {STREAM_BYTES / baseline / 1e6:.0f} MB/s",
                baseline / ndjson_seconds,
                ">= 0.5x",
            )
            report.add("stream", "RSS growth during NDJSON stream", mb(peak - rss_before), "", None, "<= 32 MiB")
            # Log stream of a process producing the same output, followed live.
            baseline = min([await raw_pipe_seconds() for _ in range(2)])
            async with session.post(f"{daemon.url}/process", json={"command": STREAM_COMMAND, "name": "live"}) as resp:
                await resp.read()
            t0 = time.perf_counter()
            received = 0
            peak = daemon.rss()
            base_rss = peak
            async with session.get(f"{daemon.url}/process/live/logs/stream") as resp:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    received += len(chunk)
                    peak = max(peak, daemon.rss())
            live_seconds = time.perf_counter() - t0
            expected_payload = STREAM_BYTES
            report.add(
                "stream",
                "256 MiB stdout via /logs/stream (live)",
                f"{expected_payload / live_seconds / 1e6:.0f} MB/s",
                f"raw pipe {STREAM_BYTES / baseline / 1e6:.0f} MB/s",
                baseline / live_seconds,
                ">= 0.5x",
                note=f"{received / 1e6:.0f} MB on the wire",
            )
            report.add("stream", "RSS growth during /logs/stream", mb(peak - base_rss), "", None, "<= 32 MiB")
            # Replay of the finished log, from disk.
            baseline = min([await raw_pipe_seconds() for _ in range(2)])
            t0 = time.perf_counter()
            async with session.get(f"{daemon.url}/process/live/logs/stream") as resp:
                async for _ in resp.content.iter_chunked(1 << 20):
                    pass
            replay = time.perf_counter() - t0
            report.add(
                "stream",
                "256 MiB replay via /logs/stream (finished)",
                f"{expected_payload / replay / 1e6:.0f} MB/s",
                f"raw pipe {STREAM_BYTES / baseline / 1e6:.0f} MB/s",
                baseline / replay,
                ">= 0.5x",
            )


async def idle_memory(report: Report) -> None:
    with Daemon() as daemon:
        await asyncio.sleep(2)
        report.add("memory", "idle RSS of the daemon", mb(daemon.rss()), "", None, "<= 40 MiB")


async def main(report: Report) -> None:
    runs = int(os.environ.get("BENCH_EXEC_RUNS", "1000"))
    await idle_memory(report)
    await exec_latency(report, runs)
    await stream_throughput(report)


if __name__ == "__main__":
    rep = Report()
    asyncio.run(main(rep))
