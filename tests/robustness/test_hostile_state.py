"""A hostile environment around a real daemon: its state dir wiped or full, a second
daemon on the same state dir, clients that stall while reading or dribble while
sending, a huge process list, a SHELL that is not there."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Daemon, kill_leftovers

from .support import HealthProbe, free_bytes, marker, put_head, snapshot, tmpfs

MIB = 1 << 20


async def post_json(session: aiohttp.ClientSession, path: str, body: dict) -> tuple[int, dict]:
    async with session.post(path, json=body) as resp:
        return resp.status, await resp.json()


async def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


# --- 7. the state dir wiped, the log disk full ------------------------------------------


@pytest.mark.timeout(60)
async def test_a_wiped_state_dir_comes_back_on_next_use(tmp_path, workdir):
    state = tmp_path / "state"
    daemon = Daemon(state, workdir)
    daemon.start()
    try:
        async with aiohttp.ClientSession(daemon.url) as session:
            status, body = await post_json(
                session, "/process", {"command": "echo before", "name": "before", "waitForCompletion": True}
            )
            assert status == 200 and body["stdout"] == "before\n", body
            for entry in state.iterdir():  # rm -rf "$SANDBOX_STATE_DIR"/*
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            for i in range(3):  # the pool of pre-created files is gone with it: every start must work
                status, body = await post_json(
                    session,
                    "/process",
                    {"command": f"echo after {i}; echo err >&2", "name": f"after{i}", "waitForCompletion": True},
                )
                assert status == 200, body
                assert (
                    body["status"] == "completed" and body["stdout"] == f"after {i}\n" and body["stderr"] == "err\n"
                ), body
            status, body = await post_json(session, "/process", {"command": "sleep 30", "name": "running"})
            assert status == 200, body
            async with session.get("/process/running/logs") as resp:
                assert resp.status == 200
            async with session.post("/filesystem-multipart/initiate/tmp/x.bin", json={}) as resp:
                assert resp.status == 200, await resp.text()  # the uploads dir is back too
            async with session.get("/filesystem-multipart") as resp:
                assert resp.status == 200, await resp.text()
        assert (state / "processes" / "processes.jsonl").exists()
        assert any((state / "logs").iterdir())
        assert "creating it again" in daemon.log()
    finally:
        daemon.stop()
    # The records written after the wipe were saved: a new daemon knows those processes.
    again = Daemon(state, workdir)
    again.start()
    try:
        async with aiohttp.ClientSession(again.url) as session:
            async with session.get("/process") as resp:
                names = {p["name"] for p in await resp.json()}
            assert {"after0", "after1", "after2", "running"} <= names, names
            async with session.get("/process/after1") as resp:
                assert (await resp.json())["stdout"] == "after 1\n"
            await session.delete("/process/running/kill")
    finally:
        again.stop()


@pytest.mark.timeout(60)
async def test_a_full_log_disk_is_a_clear_507_not_a_silent_failure(tmp_path, workdir):
    with tmpfs(tmp_path / "logs", "1m") as logs:
        daemon = Daemon(tmp_path / "state", workdir, env={"SANDBOX_LOG_DIR": str(logs)})
        daemon.start()
        try:
            async with aiohttp.ClientSession(daemon.url) as session:
                # A process that fills the disk itself fails, and the daemon says why.
                status, body = await post_json(
                    session, "/process", {"command": "head -c 2000000 /dev/zero", "waitForCompletion": True}
                )
                assert status == 200 and body["status"] == "failed", body
                assert "while the log disk" in daemon.log() and str(logs) in daemon.log()
                for name in os.listdir(logs):
                    os.truncate(logs / name, 0)
                filler = logs / "filler"
                fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
                try:  # fill it to the last block
                    while True:
                        os.write(fd, b"\0" * 4096)
                except OSError:
                    pass
                finally:
                    os.close(fd)
                assert free_bytes(logs) < 64 * 1024
                status, body = await post_json(session, "/process", {"command": "echo hi", "waitForCompletion": True})
                assert status == 507, body
                assert (
                    list(body) == ["error"]
                    and "no space left on device" in body["error"]
                    and str(logs) in body["error"]
                )
                assert "log disk" in daemon.log()
                filler.unlink()
                status, body = await post_json(session, "/process", {"command": "echo hi", "waitForCompletion": True})
                assert status == 200 and body["stdout"] == "hi\n", body
        finally:
            daemon.stop()


# --- 8. one daemon per state dir ----------------------------------------------------------


def run_second(state: Path, workdir: Path, timeout: float = 20.0) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SANDBOX_STATE_DIR": str(state), "WORKDIR": str(workdir)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return subprocess.run(
        [sys.executable, "-m", "sandbox_api", "--host", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=workdir,
        capture_output=True,
        timeout=timeout,
    )


@pytest.mark.timeout(60)
async def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(tmp_path, workdir):
    state = tmp_path / "state"
    mark = marker()
    first = Daemon(state, workdir)
    first.start()
    try:
        async with aiohttp.ClientSession(first.url) as session:
            status, body = await post_json(session, "/process", {"command": f"sleep 60; : {mark}", "name": "kept"})
            assert status == 200, body
        second = await asyncio.to_thread(run_second, state, workdir)
        assert second.returncode != 0
        assert f"state dir {state} is in use by pid {first.proc.pid}; use --state-dir" in second.stderr.decode(), (
            second.stderr
        )
        # The first one is untouched and still serves its process.
        async with aiohttp.ClientSession(first.url) as session:
            async with session.get("/process/kept") as resp:
                assert (await resp.json())["status"] == "running"
        # The lock goes with the daemon, not with its children: killed, it leaves its
        # process running, and the next daemon takes the state dir and adopts it.
        first.stop(signal.SIGKILL)
        third = Daemon(state, workdir)
        third.start()
        try:
            async with aiohttp.ClientSession(third.url) as session:
                async with session.get("/process/kept") as resp:
                    assert (await resp.json())["status"] == "running"
        finally:
            third.stop()
    finally:
        first.stop()
        kill_leftovers(mark)


TAKE_OVER = """
import os, sys, time
from pathlib import Path
from sandbox_api.statelock import StateLock
lock = StateLock.acquire(Path(sys.argv[1]), int(os.environ["SANDBOX_STATE_LOCK_FD"]))
print("taken", lock.fd, flush=True)
time.sleep(30)
"""

HOLD_THEN_EXEC = """
import os, sys
from pathlib import Path
from sandbox_api.statelock import StateLock
lock = StateLock.acquire(Path(sys.argv[1]))
env = {**os.environb, **lock.for_exec()}
os.execve(sys.executable, [sys.executable, "-c", sys.argv[2], sys.argv[1]], env)
"""


@pytest.mark.timeout(30)
def test_the_state_dir_lock_survives_an_exec_in_place(tmp_path):
    """What an upgrade does: the same pid execs a new program, which keeps the lock."""
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_THEN_EXEC, str(state), TAKE_OVER], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith(b"taken")
        from sandbox_api.statelock import StateDirInUse, StateLock

        with pytest.raises(StateDirInUse, match=f"in use by pid {proc.pid};"):
            StateLock.acquire(state)
    finally:
        proc.kill()
        proc.wait()
    StateLock.acquire(state).release()  # released with the process


# --- 9. slow readers, a long process list ------------------------------------------------------


def stalled_stream(port: int, pid: str) -> socket.socket:
    """A log stream request whose client never reads (a tiny receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /process/{pid}/logs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


@pytest.mark.timeout(90)
async def test_stalled_log_stream_readers_cost_bounded_memory_that_comes_back(tmp_path, workdir):
    clients = 200
    daemon = Daemon(tmp_path / "state", workdir)
    daemon.start()
    socks: list[socket.socket] = []
    try:
        async with aiohttp.ClientSession(daemon.url) as session:
            # 24 MB of output, already on disk: every stream has far more to send than it can.
            status, body = await post_json(
                session,
                "/process",
                {"command": "head -c 18000000 /dev/urandom | base64 -w 200", "waitForCompletion": True, "timeout": 60},
            )
            assert status == 200 and body["status"] == "completed", body["status"]
            pid = body["pid"]
            for _ in range(3):
                async with session.get("/process") as resp:
                    await resp.read()
            await asyncio.sleep(1)
            before = snapshot(daemon.proc.pid).rss_mb
            for _ in range(clients):
                socks.append(await asyncio.to_thread(stalled_stream, daemon.port, pid))
            await asyncio.sleep(3)  # every stream has filled what it may hold
            held = snapshot(daemon.proc.pid).rss_mb
            per_client_kb = (held - before) * 1024 / clients
            print(f"RSS {before:.0f} MB -> {held:.0f} MB with {clients} stalled readers: {per_client_kb:.0f} KB each")
            assert per_client_kb < 200, f"{per_client_kb:.0f} KB per stalled reader"
            for sock in socks:
                sock.close()
            socks.clear()
            settled = await wait_until(
                lambda: snapshot(daemon.proc.pid).rss_mb < before + max(8.0, (held - before) / 4), 15
            )
            after = snapshot(daemon.proc.pid).rss_mb
            print(f"after the clients left: {after:.0f} MB")
            assert settled, f"RSS stayed at {after:.0f} MB (was {before:.0f} MB, {held:.0f} MB while held)"
            async with session.get("/health") as resp:
                assert resp.status == 200
    finally:
        for sock in socks:
            sock.close()
        daemon.stop()


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, snapshot(self.pid).rss_mb)
            self._stop.wait(0.005)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.timeout(120)
async def test_a_long_process_list_is_streamed_in_bounded_memory_without_stalling(tmp_path, workdir):
    count = 160
    daemon = Daemon(tmp_path / "state", workdir)
    daemon.start()
    try:
        async with aiohttp.ClientSession(daemon.url) as session:
            command = "head -c 70000 /dev/zero | tr '\\0' o | fold -w 100; head -c 70000 /dev/zero | tr '\\0' e | fold -w 100 >&2"
            sem = asyncio.Semaphore(8)

            async def start(i: int) -> None:
                async with sem:
                    status, body = await post_json(
                        session, "/process", {"command": command, "name": f"p{i}", "waitForCompletion": True}
                    )
                    assert status == 200, body

            await asyncio.gather(*(start(i) for i in range(count)))
            await asyncio.sleep(1)
            before = snapshot(daemon.proc.pid).rss_mb
            probe = HealthProbe(daemon.port, interval=0.01)
            probe.start()
            try:
                with RssSampler(daemon.proc.pid) as sampler:
                    for _ in range(3):
                        async with session.get("/process") as resp:
                            assert resp.status == 200
                            assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
                            raw = await resp.read()
            finally:
                probe.stop()
            listed = json.loads(raw)
            assert len(listed) == count and len(raw) > 30 * MIB
            for item in listed:
                assert item["stdout"].startswith("[... truncated") and len(item["stdout"]) <= 64 * 1024 + 100
                assert item["logs"] == item["stdout"] + item["stderr"]
                assert item["completedAt"] and item["status"] == "completed"
            print(
                f"RSS {before:.0f} MB, peak {sampler.peak:.0f} MB for a {len(raw) / MIB:.0f} MB list; {probe.summary()}"
            )
            assert sampler.peak - before < 16, f"the list took {sampler.peak - before:.0f} MB"
            assert max(probe.latencies) < 0.2, probe.summary()  # the goal is 50 ms; loaded test machines vary
    finally:
        daemon.stop()


# --- 10. slow senders ---------------------------------------------------------------------


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(4096), timeout):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.timeout(60)
async def test_a_request_head_that_dribbles_in_is_cut_at_the_header_deadline(tmp_path, workdir):
    daemon = Daemon(tmp_path / "state", workdir, env={"SANDBOX_HEADER_TIMEOUT_SECONDS": "2"})
    daemon.start()
    try:

        async def dribbler() -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
            started = time.monotonic()
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            try:
                for _ in range(40):  # a header line every 0.25 s would go on for 10 s
                    await asyncio.sleep(0.25)
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                    if reader.at_eof():
                        break
                    try:
                        if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                            break
                    except TimeoutError:
                        pass
            except (ConnectionResetError, BrokenPipeError):
                pass
            finally:
                writer.close()
            return time.monotonic() - started

        held = await asyncio.gather(*(dribbler() for _ in range(50)))
        assert max(held) < 4.5, f"held for {max(held):.1f} s"
        # A kept-alive connection idle for longer than the header deadline is still usable.
        async with aiohttp.ClientSession(daemon.url) as session:
            async with session.get("/health") as resp:
                assert resp.status == 200
            await asyncio.sleep(3)
            async with session.get("/health") as resp:
                assert resp.status == 200
        # A connection that sends nothing at all goes at the deadline too.
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        assert await closed_by_server(reader, 5)
        writer.close()
    finally:
        daemon.stop()


@pytest.mark.timeout(60)
async def test_an_idle_request_body_is_cut_and_its_temp_file_released(tmp_path, workdir):
    daemon = Daemon(tmp_path / "state", workdir, env={"SANDBOX_BODY_IDLE_TIMEOUT_SECONDS": "2"})
    daemon.start()
    try:
        async with aiohttp.ClientSession(daemon.url) as session:
            async with session.get("/health") as resp:
                assert resp.status == 200
        baseline = snapshot(daemon.proc.pid)
        streams = []
        for name in ("a.bin", "b.bin", "c.bin"):
            reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
            writer.write(put_head(f"/filesystem/{workdir}/{name}", 10 * MIB).encode() + b"x" * 100_000)
            await writer.drain()
            streams.append((reader, writer))
        await asyncio.sleep(0.5)
        assert snapshot(daemon.proc.pid).fds >= baseline.fds + 3  # each holds its temp file
        started = time.monotonic()
        for reader, writer in streams:
            assert await closed_by_server(reader, 6), "an idle body was held open"
            writer.close()
        assert time.monotonic() - started < 5
        assert await wait_until(lambda: snapshot(daemon.proc.pid).fds <= baseline.fds, 5), snapshot(
            daemon.proc.pid
        ).fd_targets
        # (the fd count can reach the baseline while a temp file is still being released, under load)
        assert await wait_until(lambda: not any("(deleted)" in t for t in snapshot(daemon.proc.pid).fd_targets), 5), (
            snapshot(daemon.proc.pid).fd_targets
        )
        assert sorted(os.listdir(workdir)) == []

        # A slow upload that keeps moving takes longer than the deadline and succeeds.
        async def trickle():
            for _ in range(12):
                yield b"y" * 10_000
                await asyncio.sleep(0.4)

        async with aiohttp.ClientSession(daemon.url) as session:
            async with session.put(
                f"/filesystem/{workdir}/slow.bin", data=trickle(), headers={"Content-Type": "application/octet-stream"}
            ) as resp:
                assert resp.status == 200, await resp.text()
        assert (workdir / "slow.bin").stat().st_size == 120_000
    finally:
        daemon.stop()


# --- Low: a SHELL that is not there ---------------------------------------------------------


@pytest.mark.timeout(30)
async def test_a_missing_shell_falls_back_to_bin_sh(tmp_path, workdir):
    daemon = Daemon(tmp_path / "state", workdir, env={"SHELL": "/nonexistent/zsh"})
    daemon.start()
    try:
        async with aiohttp.ClientSession(daemon.url) as session:
            for _ in range(2):
                status, body = await post_json(session, "/process", {"command": "echo hi", "waitForCompletion": True})
                assert status == 200 and body["status"] == "completed" and body["stdout"] == "hi\n", body
        assert daemon.log().count("/nonexistent/zsh") == 1, daemon.log()
    finally:
        daemon.stop()


# --- 11. port monitors end with their process ---------------------------------------------


@pytest.mark.timeout(30)
async def test_a_port_monitor_ends_when_its_process_exits(client):
    from sandbox_api.network.routes import MONITORS

    monitors = client.app[MONITORS]()
    resp = await client.post("/process", json={"command": "sleep 1", "name": "short"})
    pid = (await resp.json())["pid"]
    resp = await client.post(f"/network/process/{pid}/monitor", json={"callback": "http://127.0.0.1:9/hook"})
    assert resp.status == 200, await resp.text()
    assert monitors.monitored == [int(pid)]
    resp = await client.get("/process/short/wait?timeout=10")
    assert (await resp.json())["status"] == "completed"
    assert await wait_until(lambda: not monitors.monitored, 5), monitors.monitored
    # Its poller (a /proc and socket scan every 500 ms) stops with the last monitor.
    assert monitors._poller is None
    # Stopping it afterwards is harmless; a pid that is gone cannot be monitored.
    resp = await client.delete(f"/network/process/{pid}/monitor")
    assert resp.status == 200
    resp = await client.post(f"/network/process/{pid}/monitor", json={"callback": "http://127.0.0.1:9/hook"})
    assert resp.status == 404
