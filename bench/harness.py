"""What every benchmark shares: a daemon subprocess, timing statistics, RSS, reporting.

The daemon runs pinned to CPU 0 and the driver (this process) to CPU 1, so the two
do not fight over one core; every figure is reported as a ratio to a baseline
measured in the same run, because these machines are noisy.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
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


@contextlib.contextmanager
def every_core() -> Iterator[None]:
    """This process (the driver), and what it starts meanwhile, on every core: an earlier
    pinned Daemon pinned the driver, and the children it starts inherit that."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, env: dict[str, str] | None = None, pinned: bool = True, binary: Path | None = None) -> None:
        """`pinned=False`: the daemon (and so its children) may use every core, as in a
        sandbox; for what spawns many children (the exec concurrency curve). `binary`: run
        that one-file build (dist/sandbox-api) instead of the code from the venv."""
        self.pinned = pinned
        self.program = [str(binary)] if binary is not None else [sys.executable, "-m", "sandbox_api"]
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
            [*self.program, "--host", "127.0.0.1", "-p", str(self.port)],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "daemon.log", "wb"),
        )
        if self.pinned and os.environ.get("BENCH_PIN", "1") == "1":
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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
    """Collects rows (benchmark, case, figure, baseline, ratio, target) and curves."""

    rows: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)

    def curve(
        self,
        name: str,
        title: str,
        xlabel: str,
        ylabel: str,
        x: list[float],
        series: dict[str, list[float]],
        log_x: bool = False,
    ) -> None:
        """A plot for results.md (bench/<name>.png): one line per series."""
        self.curves.append(
            {"name": name, "title": title, "xlabel": xlabel, "ylabel": ylabel, "x": x, "series": series, "log_x": log_x}
        )

    def add(
        self,
        bench: str,
        case: str,
        value: str,
        baseline: str = "",
        ratio: float | None = None,
        target: str = "",
        note: str = "",
    ) -> None:
        row = {
            "bench": bench,
            "case": case,
            "value": value,
            "baseline": baseline,
            "ratio": ratio,
            "target": target,
            "note": note,
        }
        self.rows.append(row)
        ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{bench:<10} {case:<44} {value:<28} {baseline:<28} {ratio_text:<8} {target} {note}", flush=True)

    def save(self, path: Path = RESULTS, command: str = "make bench") -> None:
        data = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "command": command,
            "rows": self.rows,
            "curves": self.curves,
        }
        path.write_text(json.dumps(data, indent=2))
        plots = [c["name"] for c in self.curves if draw(c, path.parent / f"{c['name']}.png")]
        (path.parent / "results.md").write_text(markdown(data, plots))


def markdown(data: dict, plots: list[str]) -> str:
    """results.md: the figures as a table, with where and how they were measured."""
    lines = [
        "# Benchmark results",
        "",
        f"- date: {data['date']}",
        f"- machine: {data['machine']}",
        f"- command: `{data['command']}`",
        "- daemon pinned to CPU 0, driver to CPU 1 (but for the exec concurrency curve, B3: unpinned, baseline too);"
        " every ratio is against a baseline measured in the same run"
        " (these machines are noisy: compare ratios, not absolute figures).",
        "- the suite of docs/benchmarks.md: http = B1, exec = B2 and B3,"
        " bigout = B4, stream = B5, complete = B6 and B7, upload = B8, download = B9, fs = B10,"
        " fuzzy = B11, content = B12, watch = B13, ports = B14, footprint and memory = B15,"
        " binary = B16, soak = B17; smallfile, mcp and terminal are the original's and ours.",
        "",
        "| bench | case | figure | baseline | ratio | target | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in data["rows"]:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else ""
        cells = [row["bench"], row["case"].strip(), row["value"], row["baseline"], ratio, row["target"], row["note"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    for name in plots:
        lines += ["", f"![{name}]({name}.png)"]
    return "\n".join(lines) + "\n"


def draw(curve: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, ys in curve["series"].items():
        ax.plot(curve["x"], ys, marker="o", label=label)
    if curve["log_x"]:
        ax.set_xscale("log", base=2)
    ax.set_title(curve["title"])
    ax.set_xlabel(curve["xlabel"])
    ax.set_ylabel(curve["ylabel"])
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


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
