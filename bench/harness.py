"""What every benchmark shares: a daemon subprocess, timing statistics, RSS, reporting.

The daemon runs pinned to CPU 0 and the driver (this process) to CPU 1, so the two
do not fight over one core; every figure is reported as a ratio to a baseline
measured in the same run, because these machines are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


def pin(pid: int, cpu: int) -> None:
    if os.cpu_count() and os.cpu_count() > 1:
        try:
            os.sched_setaffinity(pid, {cpu % os.cpu_count()})
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        # BENCH_STATE_ROOT=/dev/shm puts the daemon's state (logs, records) on tmpfs.
        self.tmp = Path(tempfile.mkdtemp(prefix="sandbox-bench-", dir=os.environ.get("BENCH_STATE_ROOT")))
        self.workdir = self.tmp / "work"
        self.workdir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SANDBOX_STATE_DIR": str(self.tmp / "state"),
            "WORKDIR": str(self.workdir),
            "DISABLE_REQUEST_LOGGING": "true",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox_api", "--host", "127.0.0.1", "-p", str(self.port)],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "daemon.log", "wb"),
        )
        if os.environ.get("BENCH_PIN", "1") == "1":
            pin(self.proc.pid, 0)
            pin(os.getpid(), 1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.02)
        else:
            raise RuntimeError("daemon did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rss(self) -> int:
        assert self.proc is not None
        return rss_of(self.proc.pid)

    def peak_rss(self) -> int:
        assert self.proc is not None
        return status_field(self.proc.pid, "VmHWM")


class BaselineServer:
    """baseline_server.py: the minimal aiohttp server the daemon is compared with, pinned like it."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("baseline_server.py")), str(self.port), str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if os.environ.get("BENCH_PIN", "1") == "1":
            pin(self.proc.pid, 0)

    async def wait(self) -> None:
        import asyncio

        import aiohttp

        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(f"{self.url}/nothing"):
                        return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss_of(pid: int) -> int:
    return status_field(pid, "VmRSS")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Report:
    """Collects rows: (benchmark, case, figure, baseline, ratio, target)."""

    rows: list[dict] = field(default_factory=list)

    def add(self, bench: str, case: str, value: str, baseline: str = "", ratio: float | None = None, target: str = "", note: str = "") -> None:
        row = {"bench": bench, "case": case, "value": value, "baseline": baseline, "ratio": ratio, "target": target, "note": note}
        self.rows.append(row)
        ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{bench:<10} {case:<44} {value:<28} {baseline:<28} {ratio_text:<8} {target} {note}", flush=True)

    def save(self, path: Path = RESULTS) -> None:
        data = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "rows": self.rows,
        }
        path.write_text(json.dumps(data, indent=2))


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = status_mem_total()
    return f"{platform.node()}: {os.cpu_count()} CPU ({model}), {mem // (1 << 30)} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def status_mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def mb(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def summarize(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 99)
