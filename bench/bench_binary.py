"""The static binary (dist/sandbox-api, `make binary`): size, cold start, memory, temp files.

- start: exec until the first 200 on /health (polled every 5 ms), median of 7, against
  the same daemon from the venv (`python -m sandbox_api`) in the same run; and where the
  time goes: `sandbox-api --version` (unpacking + interpreter start, no imports of
  ours) and `python -X importtime` of the app.
- memory: RSS of the whole process tree once idle (staticx bootloader, PyInstaller
  bootloader, Python), and what a start writes to $TMPDIR.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import ROOT, Report, free_port, mb, ms, rss_of

BINARY = ROOT / "dist" / "sandbox-api"
RUNS = 7


def tree_pids(pid: int) -> list[int]:
    pids = [pid]
    for p in pids:
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def start_once(argv: list[str], tmpdir: Path, measure_tree: bool = False) -> tuple[float, int, int]:
    """Seconds to the first /health 200, tree RSS once idle, bytes in tmpdir."""
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="bench-binary-state-"))
    env = {**os.environ, "TMPDIR": str(tmpdir), "SANDBOX_STATE_DIR": str(state), "WORKDIR": str(state),
           "DISABLE_REQUEST_LOGGING": "true"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "--host", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv} exited with {proc.returncode}") from None
                time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        rss = 0
        if measure_tree:
            time.sleep(2.0)  # idle
            rss = sum(rss_of(p) for p in tree_pids(proc.pid))
        written = du(tmpdir)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        shutil.rmtree(state, ignore_errors=True)
    return elapsed, rss, written


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def import_breakdown() -> list[tuple[str, float]]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import sandbox_api.app"],
                         capture_output=True, text=True, cwd=ROOT).stderr
    top = []
    for line in out.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found and len(found.group(2)) <= 3:  # top-level imports of sandbox_api.app and itself
            top.append((found.group(3), int(found.group(1)) / 1e6))
    return sorted(top, key=lambda item: -item[1])[:6]


async def main(report: Report) -> None:
    if not BINARY.exists():
        report.add("binary", "dist/sandbox-api missing", "run make binary", "", None)
        return
    size = BINARY.stat().st_size
    report.add("binary", "file size", f"{size / 2**20:.1f} MiB", "", None, "<= 20 MiB")
    with tempfile.TemporaryDirectory(prefix="bench-binary-tmp-") as scratch:
        tmp = Path(scratch)
        binary_runs, venv_runs, rss, written = [], [], 0, 0
        for i in range(RUNS):
            run_tmp = tmp / f"b{i}"
            run_tmp.mkdir()
            elapsed, tree_rss, wrote = start_once([str(BINARY)], run_tmp, measure_tree=(i == 0))
            binary_runs.append(elapsed)
            rss = rss or tree_rss
            written = max(written, wrote)
            venv_tmp = tmp / f"v{i}"
            venv_tmp.mkdir()
            venv_runs.append(start_once([sys.executable, "-m", "sandbox_api"], venv_tmp)[0])
        b50, v50 = statistics.median(binary_runs), statistics.median(venv_runs)
        report.add("binary", f"cold start to /health (median of {RUNS})", ms(b50), f"venv python {ms(v50)}", b50 / v50, "<= 400 ms")
        unpack = statistics.median(timed([str(BINARY), "--version"], {**os.environ, "TMPDIR": str(tmp)}) for _ in range(5))
        report.add("binary", "  of which unpacking + interpreter (--version)", ms(unpack), "", None)
        for name, seconds in import_breakdown():
            report.add("binary", f"  venv import {name}", ms(seconds), "", None)
        report.add("binary", "idle RSS, whole process tree", mb(rss), "", None, "<= 40 MB")
        report.add("binary", "bytes written to $TMPDIR at start", mb(written), "", None)
