"""Stop, kill (whole tree), restart policy, keepAlive, stdin, reaping and fds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from tests.helpers import get, pid_alive, run, run_and_wait, wait_for, wait_status


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


async def test_stop_sends_sigterm_and_reports_stopped(client, tmp_path):
    marker = tmp_path / "term"
    await run(
        client, f"trap 'echo got-term > {marker}; exit 0' TERM; while true; do sleep 0.05; done", name="stoppable"
    )
    await asyncio.sleep(0.2)
    resp = await client.delete("/process/stoppable")
    assert resp.status == 200
    assert await resp.json() == {"message": "Process stopped successfully"}
    assert (await get(client, "stoppable"))["status"] in ("stopped", "completed")
    await wait_for(marker.exists)
    body = await (await client.get("/process/stoppable/wait?timeout=5")).json()
    assert body["status"] == "completed"  # a clean exit after SIGTERM is a completion


async def test_stop_of_a_finished_process_is_404(client):
    await run_and_wait(client, "true", name="done")
    resp = await client.delete("/process/done")
    assert resp.status == 404
    assert await resp.json() == {"error": "process with Identifier done is not running"}


async def test_stop_escalates_to_sigkill_but_stays_stopped(client):
    started = await run(client, "trap '' TERM; while true; do sleep 0.05; done", name="stubborn")
    await asyncio.sleep(0.2)
    assert (await client.delete("/process/stubborn")).status == 200
    await asyncio.sleep(0.5)
    assert pid_alive(int(started["pid"]))  # still in its grace period (2 s in tests)
    body = await (await client.get("/process/stubborn/wait?timeout=10")).json()
    assert body["status"] == "stopped"
    assert not pid_alive(int(started["pid"]))


async def test_kill_reaches_the_whole_tree_including_escapees(client, tmp_path):
    pidfile = tmp_path / "pids"
    command = (
        f"sleep 1000 & echo $! >> {pidfile}; "
        f"sh -c 'sleep 1000 & echo $! >> {pidfile}; wait' & "
        f"setsid sleep 1000 & echo $! >> {pidfile}; "
        f"(trap '' TERM HUP; exec sleep 1000) & echo $! >> {pidfile}; "
        "wait"
    )
    started = await run(client, command, name="tree")
    await wait_for(lambda: pidfile.exists() and len(pids_in(pidfile)) == 4)
    await asyncio.sleep(0.1)
    tree = pids_in(pidfile) + [int(started["pid"])]
    assert all(pid_alive(p) for p in tree)
    resp = await client.delete("/process/tree/kill")
    assert resp.status == 200
    assert await resp.json() == {"message": "Process killed successfully"}
    await wait_for(lambda: not any(pid_alive(p) for p in tree), timeout=5)
    body = await wait_status(client, "tree", lambda s: s != "running")
    assert body["status"] == "killed"
    assert body["exitCode"] == -1


async def test_stop_reaches_children_that_left_the_group(client, tmp_path):
    pidfile = tmp_path / "pids"
    await run(client, f"setsid sleep 1000 & echo $! > {pidfile}; wait", name="escapee")
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    escapee = pids_in(pidfile)[0]
    assert (await client.delete("/process/escapee")).status == 200
    await wait_for(lambda: not pid_alive(escapee), timeout=5)


async def test_kill_after_exit_reaches_leftover_children(client, tmp_path):
    pidfile = tmp_path / "pid"
    await run_and_wait(client, f"sleep 1000 > /dev/null 2>&1 & echo $! > {pidfile}", name="leftover")
    leftover = pids_in(pidfile)[0]
    assert pid_alive(leftover)
    assert (await client.delete("/process/leftover/kill")).status == 200
    await wait_for(lambda: not pid_alive(leftover), timeout=5)
    assert (await get(client, "leftover"))["status"] == "killed"


async def test_kill_of_a_finished_process_without_children_is_404(client):
    await run_and_wait(client, "true", name="gone")
    resp = await client.delete("/process/gone/kill")
    assert resp.status == 404
    assert await resp.json() == {"error": "failed to kill process with Identifier gone: no such process"}


async def test_kill_frees_the_port_for_the_next_run(client):
    port = 23000 + os.getpid() % 1000  # below the ephemeral range (32768+): no client socket holds it
    command = f"python3 -c \"import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',{port}));s.listen();time.sleep(100)\""
    for _ in range(2):
        await run(client, f"true; {command}", name="port-user", waitForPorts=[port], timeout=10)
        assert (await client.delete("/process/port-user/kill")).status == 200  # returns once the tree is dead
        body = await wait_status(client, "port-user", lambda s: s != "running")
        assert body["status"] == "killed", body


async def test_restart_on_failure_up_to_max_restarts(client):
    started = time.monotonic()
    body = await run_and_wait(client, "exit 1", restartOnFailure=True, maxRestarts=3, timeout=10)
    assert time.monotonic() - started >= 3
    assert body["status"] == "failed" and body["restartCount"] == 3 and body["exitCode"] == 1
    for i in (1, 2, 3):
        assert f"Attempting restart {i}/3" in body["logs"]


async def test_restart_until_success(client, tmp_path):
    counter = tmp_path / "count"
    command = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo Attempt $n; [ $n -ge 3 ]"
    )
    body = await run_and_wait(client, command, restartOnFailure=True, maxRestarts=5)
    assert body["status"] == "completed" and body["restartCount"] == 2 and body["exitCode"] == 0
    for i in (1, 2, 3):
        assert f"Attempt {i}" in body["logs"]
    assert "Attempting restart" in body["logs"]


async def test_unlimited_restarts(client, tmp_path):
    counter = tmp_path / "count"
    command = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo Attempt $n; [ $n -ge 4 ]"
    )
    body = await run_and_wait(client, command, restartOnFailure=True, maxRestarts=-1)
    assert body["status"] == "completed" and body["restartCount"] == 3
    assert "Attempting restart 1/unlimited" in body["logs"] and "Attempt 4" in body["logs"]


async def test_restart_preserves_the_environment(client, tmp_path):
    counter = tmp_path / "count"
    command = f"echo VAR=[$MY_VAR]; n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ $n -ge 1 ]"
    body = await run_and_wait(
        client, command, env={"MY_VAR": "preserved_value_42"}, restartOnFailure=True, maxRestarts=2
    )
    assert body["logs"].count("VAR=[preserved_value_42]") == 2
    assert "VAR=[]" not in body["logs"]
    assert body["restartCount"] == 1


async def test_pid_stays_the_same_across_restarts(client):
    started = await run(client, "exit 1", name="stable", restartOnFailure=True, maxRestarts=2)
    body = await (await client.get(f"/process/{started['pid']}/wait?timeout=10")).json()
    assert body["pid"] == started["pid"] and body["status"] == "failed" and body["restartCount"] == 2
    listed = [p for p in await (await client.get("/process")).json() if p["name"] == "stable"]
    assert len(listed) == 1 and listed[0]["pid"] == started["pid"]


async def test_kill_by_pid_after_restart_reaches_the_current_run(client):
    started = await run(client, "sleep 1; exit 1", name="rerun", restartOnFailure=True, maxRestarts=5)
    await asyncio.sleep(2.5)  # first run failed, second run is up
    body = await get(client, started["pid"])
    assert body["restartCount"] >= 1
    resp = await client.delete(f"/process/{started['pid']}/kill")
    assert resp.status == 200
    body = await (await client.get(f"/process/{started['pid']}/wait?timeout=10")).json()
    assert body["status"] == "killed"


async def test_kill_between_two_runs_calls_the_restart_off(client):
    started = await run(client, "exit 1", name="between", restartOnFailure=True, maxRestarts=5)
    await asyncio.sleep(0.3)  # the first run failed; the restart is 1 s away
    assert (await get(client, "between"))["status"] == "failed"
    assert (await client.delete("/process/between/kill")).status == 200
    body = await (await client.get(f"/process/{started['pid']}/wait?timeout=5")).json()
    assert body["status"] == "killed" and body["restartCount"] == 1
    await asyncio.sleep(1.2)
    assert (await get(client, "between"))["restartCount"] == 1


async def test_keepalive_holds_and_releases_the_scale_file(settings):
    scale = Path(settings.scale_file)
    scale.parent.mkdir()
    async with TestClient(TestServer(build_app(settings))) as c:
        assert scale.read_text() == "=0"  # crash recovery at start-up
        body = await run(c, "sleep 0.3", name="short", keepAlive=True)
        assert body["keepAlive"] is True
        assert scale.read_text() == "+0"  # each token is written at offset 0
        await c.get("/process/short/wait?timeout=5")
        assert scale.read_text() == "-0"
        await run(c, "sleep 30", name="held", keepAlive=True)
        assert scale.read_text() == "+0"
        assert (await c.delete("/process/held/kill")).status == 200
        assert scale.read_text() == "-0"
        assert (await get(c, "held"))["keepAlive"] is False
        await asyncio.sleep(0.3)
        assert scale.read_text() == "-0"  # the end of the killed run adds no second "-"


async def test_keepalive_timeout_kills_the_tree(client):
    started = time.monotonic()
    await run(client, "sleep 30", name="expiring", keepAlive=True, timeout=1)
    body = await (await client.get("/process/expiring/wait?timeout=10")).json()
    assert body["status"] == "killed"
    assert 0.9 <= time.monotonic() - started < 5


async def test_keepalive_can_be_disabled(settings):
    async with TestClient(TestServer(build_app(replace(settings, disable_keepalive=True)))) as c:
        resp = await c.post("/process", json={"command": "true", "keepAlive": True})
        assert resp.status == 400
        assert await resp.json() == {
            "error": "keepAlive is not available for this sandbox: it is not included in your current plan"
        }
        assert (await c.post("/process", json={"command": "true"})).status == 200


async def test_non_keepalive_timeout_never_kills(client):
    resp = await client.post(
        "/process", json={"command": "sleep 2; echo alive", "name": "patient", "timeout": 1, "waitForCompletion": True}
    )
    assert resp.status == 422
    body = await (await client.get("/process/patient/wait?timeout=10")).json()
    assert body["status"] == "completed" and body["logs"] == "alive\n"


async def test_stdin_pipe_write_and_close(client):
    body = await run(client, "cat; echo end", name="reader", stdin=True)
    assert body["stdin"] is True
    resp = await client.post("/process/reader/stdin", data=b"hello\n")
    assert resp.status == 200
    assert (await resp.json())["bytes"] == 6
    await client.post("/process/reader/stdin", data="wörld\n".encode())
    resp = await client.delete("/process/reader/stdin")
    assert resp.status == 200
    assert (await client.delete("/process/reader/stdin")).status == 200  # idempotent
    body = await (await client.get("/process/reader/wait?timeout=10")).json()
    assert body["status"] == "completed"
    assert body["stdout"] == "hello\nwörld\nend\n"


async def test_stdin_large_write_is_not_truncated(client):
    await run(client, "wc -c", name="counter", stdin=True)
    payload = os.urandom(3 * 1024 * 1024)
    resp = await client.post("/process/counter/stdin", data=payload)
    assert resp.status == 200
    await client.delete("/process/counter/stdin")
    body = await (await client.get("/process/counter/wait?timeout=10")).json()
    assert body["stdout"].strip() == str(len(payload))


async def test_stdin_errors(client):
    await run(client, "sleep 5", name="no-stdin")
    resp = await client.post("/process/no-stdin/stdin", data=b"x")
    assert resp.status == 409
    assert "error" in await resp.json()
    resp = await client.post("/process/nope/stdin", data=b"x")
    assert resp.status == 404
    await client.delete("/process/no-stdin/kill")


async def test_stdin_defaults_to_dev_null(client):
    body = await run_and_wait(client, "cat; echo eof-seen", timeout=5)
    assert body["logs"] == "eof-seen\n"


async def test_orphans_are_reaped(client):
    me = os.getpid()
    await run_and_wait(client, "sleep 0.1 & sleep 0.1 & echo parent-done")
    await asyncio.sleep(0.3)  # the orphans exit and are re-parented to us (subreaper)

    def zombies() -> list[int]:
        found = []
        for task in os.listdir(f"/proc/{me}/task"):
            for pid in open(f"/proc/{me}/task/{task}/children").read().split():
                try:
                    if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                        found.append(int(pid))
                except OSError:
                    pass
        return found

    await wait_for(lambda: not zombies(), timeout=5)


def _zombie_children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in open(f"/proc/{pid}/task/{task}/children").read().split():
            try:
                if open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                    found.append(int(child))
            except OSError:
                pass
    return found


@pytest.mark.timeout(60)
async def test_children_are_reaped_through_pidfds_without_a_sigchld_handler(daemon):
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        pytest.skip("no pidfd_open on this kernel: the daemon reaps on SIGCHLD")
    assert daemon.proc is not None
    for line in open(f"/proc/{daemon.proc.pid}/status"):
        if line.startswith("SigCgt:"):
            assert not int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)), "the daemon still catches SIGCHLD"
    async with aiohttp.ClientSession(daemon.url) as session:

        async def one(i: int) -> int:
            body = {"command": f"exit {i % 5}", "waitForCompletion": True, "timeout": 30}
            async with session.post("/process", json=body) as resp:
                assert resp.status == 200
                return (await resp.json())["exitCode"]

        codes = await asyncio.gather(*(one(i) for i in range(40)))
    assert codes == [i % 5 for i in range(40)]  # every exit seen, each with its own status
    await wait_for(lambda: not _zombie_children(daemon.proc.pid), timeout=5)


async def test_no_fd_leak_after_many_processes(client):
    def fds() -> int:
        """Open fds, not counting sockets (the HTTP client keeps its connections)."""
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        return count

    await run_and_wait(client, "echo warm")
    before = fds()
    for batch in range(10):
        await asyncio.gather(*(run_and_wait(client, f"echo {batch}-{i}; echo e >&2") for i in range(20)))
    await asyncio.gather(*(run(client, "sleep 0.1", stdin=True) for _ in range(10)))
    await asyncio.sleep(0.5)
    assert fds() <= before + 2


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
async def test_wait_for_ports_returns_when_the_tree_serves(client, bind):
    port = 24000 + (os.getpid() * 7 + (1 if bind == "::" else 0)) % 2000
    family = "AF_INET6" if bind == "::" else "AF_INET"
    server = (
        f'python3 -c "import socket,time;s=socket.socket(socket.{family});'
        f"s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('{bind}',{port}));s.listen();time.sleep(60)\""
    )
    started = time.monotonic()
    body = await run(client, f"sleep 0.3 && {server}", name=f"srv-{port}", waitForPorts=[port], timeout=20)
    elapsed = time.monotonic() - started
    assert body["status"] == "running"
    assert 0.3 <= elapsed < 1.5
    _reader, writer = await asyncio.open_connection("127.0.0.1" if bind == "0.0.0.0" else "::1", port)
    writer.close()
    await client.delete(f"/process/srv-{port}/kill")


async def test_wait_for_ports_ignores_loopback_listeners(client):
    port = 26000 + os.getpid() % 1000
    server = (
        f"python3 -c \"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(60)\""
    )
    started = time.monotonic()
    resp = await client.post("/process", json={"command": server, "name": "lo", "waitForPorts": [port], "timeout": 2})
    assert resp.status == 422
    assert await resp.json() == {"error": "process timed out waiting for ports after 2 seconds"}
    assert 1.9 <= time.monotonic() - started < 4
    assert (await get(client, "lo"))["status"] == "running"
    await client.delete("/process/lo/kill")


async def test_wait_for_ports_stops_when_the_process_exits(client):
    started = time.monotonic()
    resp = await client.post("/process", json={"command": "exit 3", "waitForPorts": [43999], "timeout": 30})
    assert resp.status == 422
    assert "exited" in (await resp.json())["error"]
    assert time.monotonic() - started < 2


async def test_wait_for_ports_then_wait_for_completion_share_one_deadline(client):
    port = 28000 + os.getpid() % 1000
    server = f"python3 -c \"import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',{port}));s.listen();time.sleep(0.5)\""
    body = await run(client, server, waitForPorts=[port], waitForCompletion=True, timeout=10)
    assert body["status"] == "completed"


async def test_log_files_are_capped_oldest_bytes_first(settings):
    app = build_app(replace(settings, max_log_file_bytes=256 * 1024, max_log_bytes_total=0))
    async with TestClient(TestServer(app)) as c:
        body = await run_and_wait(c, "seq 1 400000", name="big")  # about 2.7 MB
        assert body["stdout"].endswith("399999\n400000\n")
        logs = await (await c.get("/process/big/logs")).json()
        # Inline, the marker names the route that replays the rest; in the replay, the head is gone.
        assert logs["stdout"].startswith("[... truncated: GET /process/big/logs/stream replays all the output kept")
        assert logs["stdout"].endswith("400000\n")
        stdout_file = next(Path(settings.logs_dir).glob("*.stdout.log"))
        assert stdout_file.stat().st_blocks * 512 <= 400 * 1024
        text = (await (await c.get("/process/big/logs/stream")).read()).decode()
        lines = text.splitlines()
        assert lines[0] == "stdout:[... truncated: earlier output was dropped (SANDBOX_MAX_LOG_FILE_BYTES) ...]"
        numbers = [int(line[7:]) for line in lines[1:]]
        assert numbers == list(range(numbers[0], 400001))
        assert len(numbers) > 10000


async def test_children_get_default_signal_dispositions(client):
    # Python ignores SIGPIPE; a child that inherited that would make `yes | head` spin forever.
    started = time.monotonic()
    body = await run_and_wait(client, "yes | head -n 2; grep -E 'SigIgn|SigBlk' /proc/self/status", timeout=10)
    assert body["stdout"].startswith("y\ny\n")
    status = dict(line.split(":\t") for line in body["stdout"].splitlines()[2:])
    ignored = int(status["SigIgn"], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))
    assert int(status["SigBlk"], 16) == 0
    assert time.monotonic() - started < 5


async def test_children_get_default_interrupts_even_when_the_daemon_ignores_them(client):
    """A daemon started in the background by a shell without job control (`sandbox-api &`
    in an entrypoint) ignores SIGINT and SIGQUIT; its commands must not inherit that, or
    an interrupt (Ctrl-C in the terminal, a session's timeout) would never stop them."""
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        # What the command itself gets, as it reports it: the shell's own state is no
        # measure (bash ignores SIGQUIT for itself until it execs a command).
        done = await run_and_wait(client, "grep SigIgn /proc/self/status")  # spawned with posix_spawn
        mask = int(done["stdout"].split()[1], 16)
        assert not mask & (1 << (signal.SIGINT - 1)), f"SIGINT ignored in the child: {mask:#x}"
        assert not mask & (1 << (signal.SIGQUIT - 1)), f"SIGQUIT ignored in the child: {mask:#x}"
        # A session's shell is spawned with Popen (it takes a terminal); its commands too.
        resp = await client.post("/session", json={"shell": "sh"})
        assert resp.status == 200, await resp.text()
        session = (await resp.json())["id"]
        try:
            resp = await client.post(f"/session/{session}/exec", json={"command": "grep SigIgn /proc/self/status"})
            output = (await resp.json())["output"]
        finally:
            await client.delete(f"/session/{session}")
        mask = int(output.split()[1], 16)
        assert not mask & (1 << (signal.SIGINT - 1)), f"SIGINT ignored in a session's command: {output!r}"
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
