"""The official Python SDK (`blaxel`, pinned) drives the process API unchanged."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from blaxel.core.sandbox.types import ResponseError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_exec_plain_returns_running(sandbox):
    name = unique("plain")
    result = await sandbox.process.exec({"name": name, "command": "sleep 2"})
    assert result.status == "running"
    assert result.name == name and result.pid.isdigit()
    await sandbox.process.kill(name)


async def test_exec_waiting_returns_output(sandbox):
    result = await sandbox.process.exec({"command": "echo 'hello world'", "wait_for_completion": True})
    assert result.status == "completed"
    assert result.exit_code == 0
    assert result.logs == "hello world\n"
    assert result.name.startswith("proc-")


async def test_exec_failure_is_a_status_not_an_exception(sandbox):
    result = await sandbox.process.exec({"command": "exit 42", "wait_for_completion": True})
    assert result.status == "failed" and result.exit_code == 42


async def test_exec_with_on_log_streams_every_line(sandbox):
    seen, out, err = [], [], []
    result = await sandbox.process.exec(
        {
            "command": "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done",
            "wait_for_completion": True,
            "on_log": seen.append,
            "on_stdout": out.append,
            "on_stderr": err.append,
        }
    )
    assert result.status == "completed"
    assert "\n".join(out).split("\n") == ["out1", "out2", "out3"]
    assert "\n".join(err).split("\n") == ["err1", "err2", "err3"]
    assert sorted("\n".join(seen).split("\n")) == sorted(["out1", "out2", "out3", "err1", "err2", "err3"])


async def test_exec_with_on_log_of_an_instant_command(sandbox):
    streamed = []
    await sandbox.process.exec(
        {"command": "echo recipe-stream", "wait_for_completion": True, "on_log": streamed.append}
    )
    assert "recipe-stream" in streamed


async def test_get_list_and_logs(sandbox):
    name = unique("gll")
    await sandbox.process.exec(
        {"name": name, "command": "echo 'test output'; echo 'test error' >&2", "wait_for_completion": True}
    )
    got = await sandbox.process.get(name)
    assert got.status == "completed" and got.stdout == "test output\n"
    listed = await sandbox.process.list()
    assert name in [p.name for p in listed]
    assert await sandbox.process.logs(name, "stdout") == "test output\n"
    assert await sandbox.process.logs(name, "stderr") == "test error\n"
    assert "test output" in await sandbox.process.logs(name)


async def test_stream_logs_delivers_lines_then_ends(sandbox):
    name = unique("ticker")
    await sandbox.process.exec({"name": name, "command": "for i in 1 2 3; do echo tick$i; sleep 0.2; done"})
    ticks, out = [], []
    handle = sandbox.process.stream_logs(name, {"on_log": ticks.append, "on_stdout": out.append})
    for _ in range(50):
        if "tick3" in ticks:
            break
        await asyncio.sleep(0.1)
    handle.close()
    assert ticks == ["tick1", "tick2", "tick3"]
    assert out == ticks


async def test_wait_uses_the_long_poll(sandbox, sdk_daemon):
    name = unique("waited")
    await sandbox.process.exec({"name": name, "command": "sleep 1.5; echo waited"})
    result = await sandbox.process.wait(name, max_wait=10000, interval=5000)
    assert result.status == "completed"
    assert result.logs == "waited\n"
    assert f"GET /process/{name}/wait?timeout=" in sdk_daemon.log()  # the long poll, not polling GET


async def test_wait_times_out_with_timeout_error(sandbox):
    name = unique("long")
    await sandbox.process.exec({"name": name, "command": "sleep 30"})
    with pytest.raises(TimeoutError):
        await sandbox.process.wait(name, max_wait=1200, interval=200)
    await sandbox.process.kill(name)


async def test_stop_and_kill(sandbox):
    stopped = unique("stop")
    await sandbox.process.exec({"name": stopped, "command": "sleep 30"})
    response = await sandbox.process.stop(stopped)
    assert "stopped" in response.message
    assert (await sandbox.process.wait(stopped, max_wait=10000)).status == "stopped"
    killed = unique("kill")
    await sandbox.process.exec({"name": killed, "command": "sleep 30"})
    response = await sandbox.process.kill(killed)
    assert "killed" in response.message
    assert (await sandbox.process.wait(killed, max_wait=10000)).status == "killed"


async def test_errors_surface_as_sdk_errors(sandbox):
    with pytest.raises(ResponseError) as info:
        await sandbox.process.logs(unique("missing"))
    assert info.value.status == 404
    name = unique("busy")
    await sandbox.process.exec({"name": name, "command": "sleep 30"})
    with pytest.raises(ResponseError) as info:
        await sandbox.process.exec({"name": name, "command": "true"})
    assert info.value.status == 400
    assert "already exists and is running" in str(info.value)
    await sandbox.process.kill(name)
    with pytest.raises(ResponseError) as info:
        await sandbox.process.write_stdin(name, "x")
    assert info.value.status in (404, 409)


async def test_restart_on_failure(sandbox):
    result = await sandbox.process.exec(
        {"command": "exit 1", "restart_on_failure": True, "max_restarts": 3, "wait_for_completion": True, "timeout": 10}
    )
    assert result.status == "failed"
    assert result.restart_count == 3
    assert result.exit_code == 1
    for i in (1, 2, 3):
        assert f"Attempting restart {i}/3" in result.logs


async def test_stdin_write_and_close(sandbox):
    name = unique("repl")
    await sandbox.process.exec({"name": name, "command": "cat", "stdin": True})
    await sandbox.process.write_stdin(name, "print(1 + 1)\n")
    await sandbox.process.write_stdin(name, b"bytes too\n")
    await sandbox.process.close_stdin(name)
    result = await sandbox.process.wait(name, max_wait=10000)
    assert result.status == "completed"
    assert result.stdout == "print(1 + 1)\nbytes too\n"


async def test_exec_with_working_dir_and_env(sandbox):
    result = await sandbox.process.exec(
        {
            "command": "pwd; echo $GREETING",
            "working_dir": "/tmp",
            "env": {"GREETING": "hi"},
            "wait_for_completion": True,
        }
    )
    assert result.stdout == "/tmp\nhi\n"
    assert result.working_dir == "/tmp"
