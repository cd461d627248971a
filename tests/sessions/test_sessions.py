"""Shell sessions over HTTP: state that persists, exit codes, interleaving, stdin at EOF,
interrupts that keep the session, shells that end, restart, reaping, the cap, cleanup."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from sandbox_api.config import Settings

SHELLS = ["bash", "sh"]  # bash keeps queued input on SIGINT, dash drops it: both must come back


@pytest_asyncio.fixture
async def small(settings: Settings) -> AsyncIterator[TestClient]:
    """A daemon with a 2-session cap, 1 s idle reaping and a 1 KiB inline output."""
    app = build_app(
        replace(
            settings, session_max=2, session_idle_seconds=1.0, session_inline_bytes=1024, session_max_output_bytes=8192
        )
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def create(client: TestClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/session", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def run(client: TestClient, session: str, command: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(f"/session/{session}/exec", json={"command": command, **extra})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def pid_in(output: str) -> int:
    """The pid a command printed as `pid=N` (bash also says `[1] N` for a background job, as in a terminal)."""
    found = re.search(r"pid=(\d+)", output)
    assert found, output
    return int(found.group(1))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def ignores_hangup(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            ignored = next(line for line in f if line.startswith("SigIgn:")).split()[1]
    except (OSError, StopIteration):
        return False
    return bool(int(ignored, 16) & (1 << (signal.SIGHUP - 1)))


async def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


# --- state and output ------------------------------------------------------------------------


async def test_cwd_exports_and_functions_persist_between_commands(client, tmp_path):
    (tmp_path / "sub").mkdir()
    await create(client, name="s1")
    first = await run(client, "s1", f'cd {tmp_path}/sub && export GREETING=hello && shout() {{ echo "$1!"; }}')
    assert first["exitCode"] == 0 and first["cwd"] == f"{tmp_path}/sub"
    second = await run(client, "s1", "pwd; echo $GREETING; shout hey; alias ll='echo aliased'")
    assert second["output"] == f"{tmp_path}/sub\nhello\nhey!\n"
    assert (await run(client, "s1", "ll"))["output"] == "aliased\n"


async def test_the_exit_code_is_the_commands(client):
    await create(client, name="codes")
    assert (await run(client, "codes", "false"))["exitCode"] == 1
    assert (await run(client, "codes", "sh -c 'exit 42'"))["exitCode"] == 42
    assert (await run(client, "codes", "f() { return 7; }; f"))["exitCode"] == 7
    result = await run(client, "codes", "no-such-command-xyz")
    assert result["exitCode"] == 127 and "not found" in result["output"]
    assert (await run(client, "codes", "true"))["exitCode"] == 0


async def test_stdout_and_stderr_interleave_in_the_order_written(client):
    await create(client, name="mix")
    # No explicit flush: on a pipe Python would hold stdout back and print "2" first.
    script = "import sys; print(1); print(2, file=sys.stderr); print(3); print(4, file=sys.stderr)"
    result = await run(client, "mix", f"{sys.executable} -c '{script}'")
    assert result["output"] == "1\n2\n3\n4\n"
    assert (await run(client, "mix", "echo a; echo b >&2; printf c"))["output"] == "a\nb\nc"


async def test_a_command_reading_stdin_gets_eof_at_once(client):
    await create(client, name="stdin")
    started = time.monotonic()
    result = await run(client, "stdin", "cat; read line; echo read=$?; head -c 10", timeout=20)
    assert time.monotonic() - started < 5
    assert result["output"] == "read=1\n" and not result["timedOut"]


async def test_a_command_reading_the_terminal_itself_gets_eof(client):
    await create(client, name="tty")
    started = time.monotonic()
    result = await run(client, "tty", "read secret </dev/tty; echo first=$?", timeout=20)
    assert result["output"] == "first=1\n" and time.monotonic() - started < 5
    assert (await run(client, "tty", "read again </dev/tty; echo second=$?", timeout=20))["output"] == "second=1\n"


async def test_output_that_is_no_marker_is_kept_whole(client):
    await create(client, name="bytes")
    text = "héllo\x1ewörld ✓ \x1b[1mbold\x1b[0m"
    result = await run(client, "bytes", f"printf '%s' '{text}'")
    assert result["output"] == text and result["outputBytes"] == len(text.encode())


# --- interrupts ------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
async def test_a_command_past_its_timeout_is_interrupted_and_the_session_goes_on(client, shell):
    await create(client, name="slow", shell=shell)
    await run(client, "slow", "export KEPT=yes; cd /")
    started = time.monotonic()
    result = await run(client, "slow", "echo before; sleep 30; echo never", timeout=0.5)
    assert time.monotonic() - started < 5
    assert result["timedOut"] and result["exitCode"] == 130
    assert "before" in result["output"] and "never" not in result["output"]
    after = await run(client, "slow", "echo $KEPT; pwd")
    assert after["output"] == "yes\n/\n" and not after["timedOut"]


@pytest.mark.parametrize("shell", SHELLS)
async def test_a_loop_run_by_the_shell_itself_is_interrupted(client, shell):
    await create(client, name="loop", shell=shell)
    result = await run(client, "loop", "while :; do :; done", timeout=0.5)
    assert result["timedOut"] and not result["sessionEnded"]
    assert (await run(client, "loop", "echo fine"))["output"] == "fine\n"


@pytest.mark.parametrize("shell", SHELLS)
async def test_a_loop_of_jobs_is_abandoned_on_interrupt(client, shell):
    await create(client, name="jobs", shell=shell)
    result = await run(client, "jobs", "for i in 1 2 3 4 5 6; do sleep 1; echo $i; done", timeout=0.5)
    assert result["timedOut"] and result["output"].strip() == ""
    started = time.monotonic()
    assert (await run(client, "jobs", "echo next"))["output"] == "next\n"
    assert time.monotonic() - started < 2.5  # the rest of the loop (4.5 s more) did not run first


@pytest.mark.parametrize("shell", SHELLS)
async def test_an_interrupt_before_the_command_starts_keeps_the_session(client, shell):
    """A timeout so short that SIGINT reaches the shell while it reads the command line:
    the shell drops the line; the answer is an interrupted command, not a killed session."""
    await create(client, name="early", shell=shell)
    for i, command in enumerate(["echo fuzz", "true", "pwd"] * 4):
        result = await run(client, "early", command, **{("timeout" if i % 2 else "idleTimeout"): 1e-9})
        assert not result["sessionEnded"], result
        assert result["exitCode"] in ((0, 130) if result["timedOut"] else (0,)), result  # 0: it ended first
    assert (await run(client, "early", "echo still"))["output"] == "still\n"


async def test_silence_past_idle_timeout_interrupts(client):
    await create(client, name="idle")
    started = time.monotonic()
    ticking = "for i in 1 2 3 4 5 6 7 8; do echo tick; sleep 0.25; done; sleep 30"
    result = await run(client, "idle", ticking, idleTimeout=1.0)
    assert 2.6 <= time.monotonic() - started < 8  # the last tick at 1.75 s, silence from then on
    assert result["timedOut"] and result["output"].count("tick") == 8
    assert (await run(client, "idle", "echo ok"))["output"] == "ok\n"


async def test_a_job_ignoring_sigint_is_killed_after_the_grace(client):
    await create(client, name="stubborn")
    started = time.monotonic()
    result = await run(client, "stubborn", "sh -c 'trap \"\" INT; sleep 30'", timeout=0.5)
    assert 2 <= time.monotonic() - started < 8
    assert result["timedOut"] and result["exitCode"] == 137
    assert (await run(client, "stubborn", "echo alive"))["output"] == "alive\n"


async def test_a_shell_loop_ignoring_sigint_ends_the_session_clearly(client):
    view = await create(client, name="deaf")
    result = await run(client, "deaf", "trap '' INT; while :; do :; done", timeout=0.5)
    assert result["timedOut"] and result["sessionEnded"] and result["exitCode"] == 137
    assert "did not stop on SIGINT" in result["endReason"]
    assert await gone(view["pid"])
    resp = await client.post("/session/deaf/exec", json={"command": "true"})
    assert resp.status == 409 and "did not stop on SIGINT" in (await resp.json())["endReason"]


# --- shells that end ------------------------------------------------------------------------


async def test_exit_ends_the_session_with_a_clear_answer(client):
    await create(client, name="bye")
    result = await run(client, "bye", "echo last; exit 3")
    assert result["sessionEnded"] and result["exitCode"] == 3
    assert "last" in result["output"] and result["endReason"] == "the shell exited with code 3"
    resp = await client.post("/session/bye/exec", json={"command": "echo again"})
    assert resp.status == 409
    body = await resp.json()
    assert "ended" in body["error"] and body["endReason"] == "the shell exited with code 3"
    view = await (await client.get("/session/bye")).json()
    assert view["state"] == "ended" and view["pid"] is None


async def test_exec_replacing_the_shell_ends_the_session(client):
    await create(client, name="execd")
    result = await run(client, "execd", "exec sh -c 'echo replaced; exit 5'")
    assert result["sessionEnded"] and result["exitCode"] == 5 and "replaced" in result["output"]
    assert (await client.post("/session/execd/exec", json={"command": "true"})).status == 409


async def test_a_shell_killing_itself_ends_the_session(client):
    await create(client, name="suicide")
    result = await run(client, "suicide", "kill -9 $$")
    assert result["sessionEnded"] and result["exitCode"] == 137
    assert result["endReason"] == "the shell was killed by SIGKILL"


async def test_a_shell_killed_from_outside_shows_as_ended(client):
    view = await create(client, name="victim")
    os.kill(view["pid"], signal.SIGKILL)
    for _ in range(100):
        view = await (await client.get("/session/victim")).json()
        if view["state"] == "ended":
            break
        await asyncio.sleep(0.05)
    assert view["state"] == "ended" and "SIGKILL" in view["endReason"]
    resp = await client.post("/session/victim/exec", json={"command": "true"})
    assert resp.status == 409 and "SIGKILL" in (await resp.json())["error"]


async def test_restart_gives_a_fresh_shell(client, workdir):
    await create(client, name="again", env={"GIVEN": "kept"})
    await run(client, "again", "cd / && export LOST=1")
    old_pid = (await (await client.get("/session/again")).json())["pid"]
    resp = await client.post("/session/again/restart")
    assert resp.status == 200
    view = await resp.json()
    assert view["state"] == "idle" and view["pid"] != old_pid and view["cwd"] == str(workdir)
    assert await gone(old_pid)
    result = await run(client, "again", 'pwd; echo "${LOST:-unset} $GIVEN"')
    assert result["output"] == f"{workdir}\nunset kept\n"
    await run(client, "again", "exit")
    assert (await client.post("/session/again/restart")).status == 200  # an ended session restarts too
    assert (await run(client, "again", "echo up"))["output"] == "up\n"


# --- listing, cleanup, limits ------------------------------------------------------------------


async def test_sessions_are_listed_with_their_state(client, workdir):
    await create(client, name="lister")
    generated = await create(client)
    assert generated["id"].startswith("session-")
    running = asyncio.ensure_future(run(client, "lister", "sleep 1"))
    await asyncio.sleep(0.3)
    listed = {s["id"]: s for s in (await (await client.get("/session")).json())["sessions"]}
    assert listed["lister"]["state"] == "running" and listed[generated["id"]]["state"] == "idle"
    assert listed["lister"]["cwd"] == str(workdir) and listed["lister"]["createdAt"].endswith("Z")
    busy = await client.post("/session/lister/exec", json={"command": "true"})
    assert busy.status == 409 and "one command at a time" in (await busy.json())["error"]
    await running
    view = await (await client.get("/session/lister")).json()
    assert view["state"] == "idle" and view["execCount"] == 1


async def test_delete_kills_the_shell_and_everything_it_started(client):
    view = await create(client, name="doomed")
    started = await run(
        client, "doomed", "sleep 3117 & echo pid=$!; setsid sleep 3118 & sleep 0.2; echo pid=$(pgrep -f 'sleep 3118')"
    )
    pids = [int(p) for p in re.findall(r"pid=(\d+)", started["output"])]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    resp = await client.delete("/session/doomed")
    assert resp.status == 200
    for pid in [view["pid"], *pids]:
        assert await gone(pid), pid
    assert (await client.get("/session/doomed")).status == 404


async def test_sessions_leave_no_fd_behind(small):
    await create(small, name="warm")  # the first session sets up what stays (the child watcher...)
    await run(small, "warm", "seq 1 1000")
    await small.delete("/session/warm")
    before = len(os.listdir("/proc/self/fd"))
    for round in range(3):
        await create(small, name=f"fds{round}")
        await run(small, f"fds{round}", "seq 1 1000; sleep 60 &")  # a spilled output and a background job
        await run(small, f"fds{round}", "sleep 5", timeout=0.2)
        await small.post(f"/session/fds{round}/restart")
        await small.delete(f"/session/fds{round}")
    assert len(os.listdir("/proc/self/fd")) == before


async def test_unknown_sessions_are_404(client):
    for method, path in [
        ("GET", "/session/nope"),
        ("DELETE", "/session/nope"),
        ("POST", "/session/nope/restart"),
        ("GET", "/session/nope/output/1"),
    ]:
        resp = await client.request(method, path)
        assert resp.status == 404 and (await resp.json())["error"] == "session nope not found", path
    resp = await client.post("/session/nope/exec", json={"command": "true"})
    assert resp.status == 404


@pytest.mark.parametrize(
    "body, message",
    [
        ({"name": "../x"}, "invalid session name"),
        ({"name": 5}, "field name must be a string"),
        ({"shell": "python3"}, "invalid shell"),
        ({"shell": "/nowhere/bash"}, "is not installed"),
        ({"workingDir": "/no/such/dir"}, "does not exist"),
        ({"env": {"A": 1}}, "must be a string"),
        ({"env": {"A=B": "x"}}, "invalid environment variable"),
    ],
)
async def test_bad_session_requests_are_400(client, body, message):
    resp = await client.post("/session", json=body)
    assert resp.status == 400
    assert message in (await resp.json())["error"]
    assert (await (await client.get("/session")).json())["sessions"] == []


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "command is required"),
        ({"command": ""}, "field command must be a non-empty string"),
        ({"command": "a\u0000b"}, "NUL"),
        ({"command": "true", "timeout": -1}, "timeout must be"),
        ({"command": "true", "timeout": "5"}, "field timeout must be"),
        ({"command": "true", "idleTimeout": -0.5}, "idleTimeout must be"),
    ],
)
async def test_bad_exec_requests_are_400_and_the_session_is_untouched(client, body, message):
    await create(client, name="strict")
    resp = await client.post("/session/strict/exec", json=body)
    assert resp.status == 400 and message in (await resp.json())["error"]
    assert (await run(client, "strict", "echo ok"))["output"] == "ok\n"


async def test_a_session_starts_without_a_body(client):
    resp = await client.post("/session")
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["id"].startswith("session-") and view["state"] == "idle"
    resp = await client.post("/session", data=b"[1]", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("invalid request body: ")


async def test_the_document_shows_the_keys_errors_add(client):
    """429 `limit`, 409 `endReason` and 416 `storedBytes` are in the error shapes the document shows."""
    doc = await (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for path, method, status, key in [
        ("/session", "post", "429", "limit"),
        ("/session/{id}/exec", "post", "409", "endReason"),
        ("/session/{id}/output/{execId}", "get", "416", "storedBytes"),
    ]:
        ref = doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        shape = schemas[ref.rsplit("/", 1)[1]]
        assert {"error", key} <= set(shape["properties"]) and "error" in shape["required"], (path, status)
    assert "sessions" in {tag["name"] for tag in doc["tags"]}


async def test_a_taken_name_is_409(client):
    await create(client, name="twice")
    resp = await client.post("/session", json={"name": "twice"})
    assert resp.status == 409 and "already exists" in (await resp.json())["error"]


async def test_past_the_cap_creating_a_session_is_429(small):
    await create(small, name="one")
    await create(small, name="two")
    resp = await small.post("/session", json={"name": "three"})
    assert resp.status == 429
    body = await resp.json()
    assert "too many sessions" in body["error"] and "SANDBOX_SESSION_MAX" in body["error"] and body["limit"] == 2
    await small.delete("/session/one")
    await create(small, name="three")


async def test_idle_sessions_are_reaped_with_their_processes(small):
    view = await create(small, name="sleepy")
    child = pid_in((await run(small, "sleepy", "sleep 3119 & echo pid=$!"))["output"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (await small.get("/session/sleepy")).status == 200:
        await asyncio.sleep(0.2)
    assert (await small.get("/session/sleepy")).status == 404
    assert await gone(view["pid"]) and await gone(child)


async def test_a_running_session_is_not_reaped(small):
    await create(small, name="busy")
    result = await run(small, "busy", "sleep 2.5; echo done")
    assert result["output"] == "done\n" and not result["sessionEnded"]


# --- long output ---------------------------------------------------------------------------------


async def test_long_output_keeps_head_and_tail_and_all_of_it_reads_by_offset(small):
    await create(small, name="long")
    result = await run(small, "long", "seq 1 1000")
    expected = "".join(f"{i}\n" for i in range(1, 1001))
    assert result["truncated"] and result["outputBytes"] == len(expected)
    head, tail = expected[: result["omittedFrom"]], expected[result["omittedTo"] :]
    assert result["output"].startswith(head) and result["output"].endswith(tail)
    assert "bytes omitted" in result["output"] and len(result["output"]) < 1200
    read, offset = "", 0
    while True:
        resp = await small.get(f"/session/long/output/{result['execId']}", params={"offset": offset, "maxBytes": 700})
        assert resp.status == 200
        chunk = await resp.json()
        read += chunk["data"]
        offset = chunk["nextOffset"]
        if chunk["eof"]:
            break
    assert read == expected


async def test_reads_by_offset_cut_on_character_boundaries(small):
    await create(small, name="utf8")
    result = await run(small, "utf8", "for i in $(seq 1 400); do printf 'é✓'; done")
    expected = "é✓" * 400
    read, offset = "", 0
    while offset < result["outputBytes"]:
        chunk = await (await small.get(f"/session/utf8/output/{result['execId']}?offset={offset}&maxBytes=64")).json()
        assert chunk["nextOffset"] > offset
        read, offset = read + chunk["data"], chunk["nextOffset"]
    assert read == expected


async def test_output_kept_past_its_file_cap_answers_416(small):
    await create(small, name="huge")
    result = await run(small, "huge", "head -c 20000 /dev/zero | tr '\\0' x")
    assert result["outputBytes"] == 20000 and result["output"].endswith("x" * 100)
    resp = await small.get(f"/session/huge/output/{result['execId']}?offset=9000")
    assert resp.status == 416 and (await resp.json())["storedBytes"] == 8192


@pytest.mark.parametrize(
    "query, status", [("offset=-1", 400), ("offset=x", 400), ("offset=99999", 400), ("maxBytes=0", 400)]
)
async def test_bad_offsets_are_400(client, query, status):
    await create(client, name="offsets")
    result = await run(client, "offsets", "echo hi")
    resp = await client.get(f"/session/offsets/output/{result['execId']}?{query}")
    assert resp.status == status and "error" in await resp.json()
    assert (await client.get("/session/offsets/output/99")).status == 404
    assert (await client.get("/session/offsets/output/abc")).status == 400


async def test_the_daemon_shutting_down_kills_every_session(settings: Settings, tmp_path: Path):
    app = build_app(settings)
    async with TestClient(TestServer(app)) as c:
        view = await create(c, name="last")
        child = pid_in((await run(c, "last", "nohup sleep 3120 >/dev/null 2>&1 & echo pid=$!"))["output"])
    assert await gone(view["pid"]) and await gone(child)
    assert not (settings.state_dir / "sessions").exists()


async def test_a_daemon_killed_leaves_no_session_process_behind(daemon_factory, tmp_path: Path):
    """The shell dies with its pty; what ignored the hang-up is killed by the next daemon."""
    first = daemon_factory()
    first.start()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{first.url}/session", json={"name": "orphan"}) as resp:
            shell = (await resp.json())["pid"]
        command = {"command": "nohup sleep 3121 >/dev/null 2>&1 & echo pid=$!"}
        async with http.post(f"{first.url}/session/orphan/exec", json=command) as resp:
            child = pid_in((await resp.json())["output"])
        # `$!` is known at fork: under load nohup may not yet ignore SIGHUP when the daemon dies.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not ignores_hangup(child):
            await asyncio.sleep(0.02)
        first.stop(signal.SIGKILL)
        assert await gone(shell)
        assert alive(child)  # nohup: the hang-up did not end it
        second = daemon_factory()
        second.start()
        try:
            assert await gone(child, within=10)
            async with http.get(f"{second.url}/session") as resp:
                assert (await resp.json())["sessions"] == []
        finally:
            second.stop()
