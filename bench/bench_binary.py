"""The one-file binary (dist/sandbox-api, `make binary`): size, cold start, memory, temp files.

- start: spawn until the first 200 on /health (polled every 2 ms), p50 and max of 11,
  interleaved with the same code started from the venv (`python -m sandbox_api`);
  then, per start, the first `POST /process` (echo, waitForCompletion) and the first
  MCP `tools/call` after spawn.
- where the time goes: `sandbox-api --version` (interpreter start, no imports of the
  app) and the biggest imports (`python -X importtime` of the app in the venv).
- memory: RSS of the whole process tree once idle; bytes written under $TMPDIR and
  /tmp during start and idle (goal 0: nothing is unpacked).
"""

from __future__ import annotations

import json
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
RUNS = 11
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


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


def _post(port: int, path: str, body: dict, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers=headers or {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def start_once(argv: list[str], tmpdir: Path, first: str = "", measure_tree: bool = False) -> dict[str, float]:
    """Seconds to the first /health 200, then to the end of the `first` request
    ("exec" or "mcp"); tree RSS once idle and bytes in tmpdir and /tmp when asked."""
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="bench-binary-state-"))
    env = {**os.environ, "TMPDIR": str(tmpdir), "SANDBOX_STATE_DIR": str(state), "WORKDIR": str(state),
           "DISABLE_REQUEST_LOGGING": "true"}  # fmt: skip
    before_tmp = set(os.listdir("/tmp"))
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "--host", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    result: dict[str, float] = {}
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv} exited with {proc.returncode}") from None
                time.sleep(0.002)
        result["health"] = time.perf_counter() - t0
        if first == "exec":
            done = _post(port, "/process", {"command": "echo hi", "waitForCompletion": True})
            assert done["stdout"] == "hi\n", done
            result["first"] = time.perf_counter() - t0
        elif first == "mcp":
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "processesList", "arguments": {}},
            }
            answer = _post(port, "/mcp", call, MCP_HEADERS)
            assert "result" in answer, answer
            result["first"] = time.perf_counter() - t0
        if measure_tree:
            time.sleep(2.0)  # idle
            result["rss"] = sum(rss_of(p) for p in tree_pids(proc.pid))
            result["written"] = du(tmpdir) + sum(du(Path("/tmp") / n) for n in set(os.listdir("/tmp")) - before_tmp
                                                 if n.startswith(("_MEI", "staticx")))  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        shutil.rmtree(state, ignore_errors=True)
    return result


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def import_breakdown() -> list[tuple[str, float]]:
    code = "from sandbox_api import outbound; outbound.import_aiohttp(); import sandbox_api.app"  # as cli.main does
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=ROOT
    ).stderr
    top = []
    for line in out.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found and len(found.group(2)) <= 3:  # top-level imports of sandbox_api.app and itself
            top.append((found.group(3), int(found.group(1)) / 1e6))
    return sorted(top, key=lambda item: -item[1])[:6]


def median_max(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} (max {ms(max(values))})"


async def main(report: Report) -> None:
    if not BINARY.exists():
        report.add("binary", "dist/sandbox-api missing", "run make binary", "", None)
        return
    size = BINARY.stat().st_size
    report.add("binary", "file size", f"{size / 2**20:.1f} MiB", "", None, "<= 20 MiB")
    binary, venv = [str(BINARY)], [sys.executable, "-m", "sandbox_api"]
    with tempfile.TemporaryDirectory(prefix="bench-binary-tmp-") as scratch:
        tmp = Path(scratch)
        kinds = [("exec", "mcp", "")[i % 3] for i in range(RUNS)]  # what each start's first request is
        runs: dict[str, list[dict[str, float]]] = {"binary": [], "venv": []}
        for i, first in enumerate(kinds):  # interleaved: the machine's noise hits both alike
            for name, argv in (("binary", binary), ("venv", venv)):
                run_tmp = tmp / f"{name}{i}"
                run_tmp.mkdir()
                runs[name].append(start_once(argv, run_tmp, first=first, measure_tree=(i == RUNS - 1)))
        health = {name: [r["health"] for r in rs] for name, rs in runs.items()}
        b50, v50 = statistics.median(health["binary"]), statistics.median(health["venv"])
        report.add("binary", f"cold start to /health, p50 of {RUNS} (max)", median_max(health["binary"]),
                   f"venv {median_max(health['venv'])}", b50 / v50, "<= 150 ms")  # fmt: skip
        for kind, label in (("exec", "first POST /process (echo, wait)"), ("mcp", "first MCP tools/call")):
            b = [r for r, k in zip(runs["binary"], kinds) if k == kind]
            v = [r["first"] for r, k in zip(runs["venv"], kinds) if k == kind]
            after_start = statistics.median(r["first"] - r["health"] for r in b)
            report.add("binary", f"spawn to end of {label}", f"{median_max([r['first'] for r in b])}, start + {ms(after_start)}",
                       f"venv {median_max(v)}", statistics.median(r["first"] for r in b) / statistics.median(v),
                       "exec <= start + 50 ms")  # fmt: skip
        last = runs["binary"][-1]
        report.add("binary", "idle RSS, whole process tree", mb(last["rss"]), f"venv {mb(runs['venv'][-1]['rss'])}",
                   last["rss"] / runs["venv"][-1]["rss"], "<= 40 MiB, goal 30")  # fmt: skip
        report.add("binary", "bytes written to $TMPDIR and /tmp (start + idle)", mb(last["written"]), "", None, "0")
        interpreter = statistics.median(timed([str(BINARY), "--version"]) for _ in range(7))
        report.add("binary", "  of which interpreter start (--version)", ms(interpreter), "", None)
        for name, seconds in import_breakdown():
            report.add("binary", f"  venv import {name}", ms(seconds), "", None)
