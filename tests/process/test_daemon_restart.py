"""A real daemon process: restart (even kill -9) keeps processes and logs; clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

from tests.helpers import pid_alive, wait_for


def http(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


async def test_processes_and_logs_survive_kill_9_of_the_daemon(daemon_factory, tmp_path):
    first = daemon_factory()
    first.start()
    ticker = "i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo tick$i; sleep 0.1; done"
    status, started = http(f"{first.url}/process", "POST", {"command": ticker, "name": "ticker"})
    assert status == 200
    status, _ = http(f"{first.url}/process", "POST", {"command": "sleep 1.2; exit 3", "name": "ends-while-down"})
    http(f"{first.url}/process", "POST", {"command": "echo done-before", "name": "finished", "waitForCompletion": True})
    time.sleep(0.5)
    first.stop(signal.SIGKILL)
    time.sleep(1.5)  # the ticker goes on writing while no daemon runs
    assert pid_alive(int(started["pid"]))

    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    status, listing = http(f"{second.url}/process")
    by_name = {p["name"]: p for p in listing}
    assert by_name["ticker"]["status"] == "running"
    assert by_name["ticker"]["pid"] == started["pid"]
    assert by_name["finished"]["status"] == "completed" and by_name["finished"]["logs"] == "done-before\n"
    gone = by_name["ends-while-down"]
    assert gone["status"] == "failed" and gone["exitCode"] == -1
    assert "Exit status unknown" in gone["logs"]

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{second.url}/process/ticker/logs/stream") as resp:
            assert resp.status == 200
            text = (await resp.read()).decode()
    lines = text.splitlines()
    ticks = [line for line in lines if line.startswith("stdout:tick")]
    assert ticks == [f"stdout:tick{i}" for i in range(1, 61)]  # nothing lost, nothing twice
    status, final = http(f"{second.url}/process/ticker")
    assert final["status"] in ("completed", "failed")


async def test_stop_and_kill_work_on_an_adopted_process(daemon_factory, tmp_path):
    first = daemon_factory()
    first.start()
    pidfile = tmp_path / "child"
    _, started = http(
        f"{first.url}/process", "POST", {"command": f"sleep 1000 & echo $! > {pidfile}; wait", "name": "adoptee"}
    )
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    first.stop(signal.SIGKILL)
    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    status, body = http(f"{second.url}/process/adoptee/kill", "DELETE")
    assert status == 200, body
    child = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(child) and not pid_alive(int(started["pid"])), timeout=5)
    await wait_for(lambda: http(f"{second.url}/process/adoptee")[1]["status"] != "running", timeout=5)
    assert http(f"{second.url}/process/adoptee")[1]["status"] == "killed"


async def test_sigterm_shuts_down_cleanly_and_leaves_processes_running(daemon_factory):
    d = daemon_factory()
    d.start()
    _, started = http(f"{d.url}/process", "POST", {"command": "sleep 30", "name": "stays"})
    started_at = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started_at < 5
    assert pid_alive(int(started["pid"]))
    os.kill(int(started["pid"]), signal.SIGKILL)


async def test_shutdown_ends_open_streams(daemon_factory):
    d = daemon_factory()
    d.start()
    http(f"{d.url}/process", "POST", {"command": "sleep 30", "name": "streamed"})
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{d.url}/process/streamed/logs/stream") as resp:
            started = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            await resp.read()
    assert time.monotonic() - started < 5
    assert d.proc.wait(10) == 0


async def test_startup_command_runs_in_the_background(daemon_factory, tmp_path: Path):
    marker = tmp_path / "started"
    d = daemon_factory(args=["-c", f"echo up > {marker}; sleep 30"])
    d.start()
    await wait_for(marker.exists, timeout=5)
    _, listing = http(f"{d.url}/process")
    assert listing == []  # not a managed process


async def test_version_flag_prints_and_exits():
    out = subprocess.run([sys.executable, "-m", "sandbox_api", "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.startswith("sandbox-api ")


async def test_port_flag_variants(daemon_factory):
    d = daemon_factory()
    d.state_dir.mkdir(parents=True, exist_ok=True)
    d.proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox_api", "-port", str(d.port), "--host=127.0.0.1"],
        cwd=d.workdir,
        env=d.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await wait_for(lambda: _answers(d.url), timeout=15)


def _answers(url: str) -> bool:
    try:
        return http(f"{url}/health", timeout=1)[0] == 200
    except OSError:
        return False


async def test_a_process_started_just_before_a_kill_9_is_adopted(daemon_factory):
    first = daemon_factory()
    first.start()
    _, started = http(f"{first.url}/process", "POST", {"command": "sleep 30", "name": "fresh"})
    first.stop(signal.SIGKILL)  # at once: before the daemon noted the child's start time
    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    _status, body = http(f"{second.url}/process/fresh")
    assert body["status"] == "running" and body["pid"] == started["pid"]
    assert http(f"{second.url}/process/fresh/kill", "DELETE")[0] == 200
    await wait_for(lambda: not pid_alive(int(started["pid"])), timeout=5)
