"""POST /process and the lookups: fields, validation, shell, environment, waiting."""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import replace
from email.utils import parsedate_to_datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from tests.helpers import get, run, run_and_wait, wait_for, wait_status

RESPONSE_KEYS = [
    "pid",
    "name",
    "command",
    "status",
    "startedAt",
    "completedAt",
    "exitCode",
    "workingDir",
    "logs",
    "stdout",
    "stderr",
    "restartOnFailure",
    "maxRestarts",
    "restartCount",
    "keepAlive",
    "stdin",
]


async def test_wait_for_completion_returns_exact_output(client):
    body = await run_and_wait(client, "echo 'hello world'")
    assert list(body) == RESPONSE_KEYS + ["endReason"]  # the original's keys, in order, then how it ended
    assert body["status"] == "completed"
    assert body["exitCode"] == 0
    assert body["logs"] == "hello world\n"
    assert body["stdout"] == "hello world\n"
    assert body["stderr"] == ""
    assert body["pid"].isdigit()
    assert body["name"].startswith("proc-") and len(body["name"]) == 13
    parsedate_to_datetime(body["startedAt"])
    assert body["completedAt"].endswith(" GMT")


async def test_non_zero_exit_is_200_failed(client):
    body = await run_and_wait(client, "sh -c 'exit 42'")
    assert body["status"] == "failed"
    assert body["exitCode"] == 42


async def test_death_by_signal_is_exit_code_minus_one(client):
    body = await run_and_wait(client, "kill -9 $$")
    assert body["status"] == "failed"
    assert body["exitCode"] == -1


async def test_stdout_and_stderr_are_kept_apart(client):
    body = await run_and_wait(client, "echo 'test output'; echo 'test error' >&2", name="out-err")
    assert body["stdout"] == "test output\n"
    assert body["stderr"] == "test error\n"
    assert body["logs"] == "test output\ntest error\n"
    resp = await client.get("/process/out-err/logs")
    assert await resp.json() == {
        "stdout": "test output\n",
        "stderr": "test error\n",
        "logs": "test output\ntest error\n",
    }


async def test_start_without_wait_returns_running_with_null_logs(client):
    body = await run(client, "sleep 5", name="bg")
    assert body["status"] == "running"
    assert body["logs"] is None
    assert body["stdout"] == "" and body["stderr"] == ""
    assert body["completedAt"] == ""
    await client.delete("/process/bg/kill")


async def test_lookup_by_name_and_by_pid(client):
    started = await run(client, "sleep 5", name="lookup")
    by_name = await get(client, "lookup")
    by_pid = await get(client, started["pid"])
    assert by_name["pid"] == by_pid["pid"] == started["pid"]
    assert by_pid["name"] == "lookup"
    for odd in ("+" + started["pid"], "0" + started["pid"]):
        assert (await client.get(f"/process/{odd}")).status == 404
    await client.delete("/process/lookup/kill")


async def test_unknown_process_is_json_404_everywhere(client):
    cases = [
        ("GET", "/process/nope", "process not found"),
        ("GET", "/process/nope/logs", "process with PID nope not found"),
        ("GET", "/process/nope/logs/stream", "process with Identifier nope not found"),
        ("DELETE", "/process/nope", "process with Identifier nope not found"),
        ("DELETE", "/process/nope/kill", "process with Identifier nope not found"),
        ("GET", "/process/nope/wait", "process not found"),
    ]
    for method, path, message in cases:
        resp = await client.request(method, path)
        assert resp.status == 404, path
        assert await resp.json() == {"error": message}


async def test_list_shows_null_completed_at_while_running(client):
    await run(client, "sleep 5", name="listed")
    done = await run_and_wait(client, "true", name="listed-done")
    resp = await client.get("/process")
    items = {p["name"]: p for p in await resp.json()}
    assert items["listed"]["completedAt"] is None
    assert items["listed-done"]["completedAt"] == done["completedAt"]
    assert list(items["listed"]) == RESPONSE_KEYS
    assert (await get(client, "listed"))["completedAt"] == ""
    await client.delete("/process/listed/kill")


async def test_empty_list_is_an_array(client):
    resp = await client.get("/process")
    assert await resp.json() == []


async def test_running_name_conflict_is_400_but_finished_name_is_reusable(client):
    await run(client, "sleep 5", name="dup")
    resp = await client.post("/process", json={"command": "true", "name": "dup"})
    assert resp.status == 400
    assert await resp.json() == {"error": "process with name 'dup' already exists and is running"}
    await client.delete("/process/dup/kill")
    await wait_status(client, "dup", lambda s: s != "running")
    again = await run_and_wait(client, "echo second", name="dup")
    assert again["logs"] == "second\n"
    assert (await get(client, "dup"))["pid"] == again["pid"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": ""},
        {"command": 12},
        {"command": "true", "env": {"A": 1}},
        {"command": "true", "env": ["A"]},
        {"command": "true", "timeout": "5"},
        {"command": "true", "timeout": -1},
        {"command": "true", "timeout": 1.5},
        {"command": "true", "waitForCompletion": "yes"},
        {"command": "true", "waitForPorts": [0]},
        {"command": "true", "waitForPorts": ["80"]},
        {"command": "true", "maxRestarts": True},
        [1, 2],
    ],
)
async def test_bad_bodies_are_400_json(client, body):
    resp = await client.post("/process", json=body)
    assert resp.status == 400
    payload = await resp.json()
    assert payload["error"].startswith("invalid request body: ")


async def test_empty_body_is_400_eof(client):
    resp = await client.post("/process", data=b"")
    assert resp.status == 400
    assert await resp.json() == {"error": "invalid request body: EOF"}


async def test_unknown_fields_are_ignored(client):
    body = await run_and_wait(client, "echo ok", cwd="/nowhere", user="root")
    assert body["logs"] == "ok\n"


async def test_bad_input_breaks_nothing(client):
    for _ in range(3):
        await client.post("/process", data=b"\xff\xfe garbage")
    assert (await run_and_wait(client, "echo still"))["logs"] == "still\n"


async def test_missing_working_dir_is_422(client, tmp_path):
    missing = str(tmp_path / "missing")
    resp = await client.post("/process", json={"command": "pwd", "workingDir": missing})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert "could not execute command" in error and "'pwd'" in error
    assert missing in error and "does not exist" in error
    resp = await client.post("/process", json={"command": "pwd", "workingDir": "rel/missing"})
    assert resp.status == 422
    assert "rel/missing" in (await resp.json())["error"]
    assert (await client.get("/process")).status == 200
    assert await (await client.get("/process")).json() == []


async def test_working_dir_absolute_relative_and_home(client, workdir, monkeypatch, tmp_path):
    body = await run_and_wait(client, "pwd", workingDir="/tmp")
    assert body["logs"] == "/tmp\n" and body["workingDir"] == "/tmp"
    (workdir / "sub").mkdir()
    body = await run_and_wait(client, "pwd", workingDir="sub")
    assert body["logs"] == f"{workdir}/sub\n" and body["workingDir"] == "sub"
    body = await run_and_wait(client, "pwd")
    assert body["logs"] == f"{workdir}\n" and body["workingDir"] == ""
    body = await run_and_wait(client, "pwd", workingDir="//tmp//")
    assert body["workingDir"] == "/tmp/"
    monkeypatch.setenv("HOME", str(tmp_path))
    body = await run_and_wait(client, "pwd", workingDir="~")
    assert body["logs"] == f"{tmp_path}\n"
    monkeypatch.delenv("HOME")
    resp = await client.post("/process", json={"command": "pwd", "workingDir": "~/x"})
    assert resp.status == 400
    assert await resp.json() == {"error": "home directory not found"}


async def test_environment_is_merged_without_duplicates(client, monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_BASE", "from-daemon")
    monkeypatch.setenv("SANDBOX_TEST_OVER", "old")
    body = await run_and_wait(
        client,
        "env",
        env={"SANDBOX_TEST_OVER": "new", "SANDBOX_TEST_ADDED": "with space"},
    )
    lines = body["stdout"].splitlines()
    assert "SANDBOX_TEST_BASE=from-daemon" in lines
    assert "SANDBOX_TEST_ADDED=with space" in lines
    assert [line for line in lines if line.startswith("SANDBOX_TEST_OVER=")] == ["SANDBOX_TEST_OVER=new"]
    keys = [line.split("=", 1)[0] for line in lines if "=" in line]
    assert len(keys) == len(set(keys))


async def test_daemon_token_does_not_leak_to_children(client, monkeypatch):
    monkeypatch.setenv("SANDBOX_API_TOKEN", "tok-7f3a9c")
    body = await run_and_wait(client, "env")
    assert "tok-7f3a9c" not in body["stdout"]
    assert "SANDBOX_API_PROCESS_ID=" in body["stdout"]


@pytest.mark.parametrize(
    "command",
    [
        "cd",
        "cd /tmp",
        "cd /tmp && pwd",
        "export TEST=value",
        "export TEST=v; echo $TEST",
        "alias ll='ls -la'",
        ". /etc/profile",
        "type ls",
    ],
)
async def test_shell_builtins(client, command):
    body = await run_and_wait(client, command)
    assert body["status"] == "completed", body
    assert body["exitCode"] == 0


async def test_shell_features_and_quoting(client):
    assert "hello world" in (await run_and_wait(client, "echo 'hello world'"))["logs"]
    assert "it's working" in (await run_and_wait(client, 'echo "it\'s working"'))["logs"]
    assert "one two three four" in (await run_and_wait(client, "echo one two; echo three four | tr '\\n' ' '; echo"))[
        "logs"
    ].replace("\n", " ")
    assert "20" in (await run_and_wait(client, "echo $(date +%Y)"))["logs"]
    assert "world" in (await run_and_wait(client, "f() { echo world; }; f"))["logs"]
    assert "done" in (await run_and_wait(client, "sleep 1 & echo done"))["logs"]


async def test_shell_and_shell_args_from_settings(settings):
    app = build_app(replace(settings, shell="bash", shell_args=("-e", "-c")))
    async with TestClient(TestServer(app)) as c:
        body = await run_and_wait(c, "echo $BASH_VERSION; false; echo not-reached")
        assert body["stdout"].strip() and "not-reached" not in body["stdout"]
        assert body["status"] == "failed"


async def test_missing_shell_is_422(settings):
    app = build_app(replace(settings, shell="/nonexistent/shell"))
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/process", json={"command": "true"})
        assert resp.status == 422
        assert (await resp.json())["error"].startswith("failed to start process: ")


async def test_wait_timeout_is_422_and_process_keeps_running(client):
    started = time.monotonic()
    resp = await client.post(
        "/process", json={"command": "sleep 30", "name": "slow", "waitForCompletion": True, "timeout": 1}
    )
    elapsed = time.monotonic() - started
    assert resp.status == 422
    message = (await resp.json())["error"]
    assert 0.9 <= elapsed < 3
    body = await get(client, "slow")
    assert body["status"] == "running"
    # Not "timed out": that reads as if the process had been killed.
    assert message == f"stopped waiting after 1 s; the process is still running (pid {body['pid']})"
    assert (await client.delete("/process/slow/kill")).status == 200
    await wait_status(client, "slow", lambda s: s == "killed")


async def test_wait_endpoint_long_polls_until_done(client):
    await run(client, "sleep 0.5; echo finished", name="poll")
    started = time.monotonic()
    resp = await client.get("/process/poll/wait?timeout=10")
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "completed" and body["logs"] == "finished\n"
    assert time.monotonic() - started < 5


async def test_wait_endpoint_returns_running_at_timeout(client):
    await run(client, "sleep 30", name="poll-long")
    started = time.monotonic()
    body = await (await client.get("/process/poll-long/wait?timeout=1")).json()
    assert body["status"] == "running"
    assert 0.9 <= time.monotonic() - started < 3
    await client.delete("/process/poll-long/kill")


@pytest.mark.parametrize("value", ["abc", "-1", "999999"])
async def test_wait_endpoint_rejects_bad_timeout(client, value):
    await run_and_wait(client, "true", name="w")
    resp = await client.get(f"/process/w/wait?timeout={value}")
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_client_disconnect_never_kills_the_process(client):
    task = asyncio.ensure_future(
        client.post(
            "/process", json={"command": "sleep 2; echo survived", "name": "orphan-req", "waitForCompletion": True}
        )
    )
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    body = await (await client.get("/process/orphan-req/wait?timeout=10")).json()
    assert body["status"] == "completed"
    assert body["logs"] == "survived\n"


async def test_oom_score_of_children_is_raised(client):
    body = await run(client, "sleep 5", name="oom")

    def score() -> int:
        with open(f"/proc/{body['pid']}/oom_score_adj") as f:
            return int(f.read())

    await wait_for(lambda: score() == 500, timeout=2)
    await client.delete("/process/oom/kill")


async def test_many_quick_processes_all_complete_with_their_output(client):
    results = await asyncio.gather(*(run_and_wait(client, f"echo n{i}") for i in range(40)))
    assert sorted(r["logs"] for r in results) == sorted(f"n{i}\n" for i in range(40))
    names = {r["name"] for r in results}
    assert len(names) == 40 and all(re.fullmatch(r"proc-[a-z0-9]{8}", n) for n in names)


def test_log_files_are_named_by_key_not_by_name(settings):
    assert not os.path.exists(settings.logs_dir)


@pytest.mark.parametrize(
    "body",
    [
        {"command": "echo a\0b"},
        {"command": "echo", "workingDir": "/tm\0p"},
        {"command": "echo", "env": {"A=B": "x"}},
        {"command": "echo", "env": {"": "x"}},
        {"command": "echo", "env": {"A": "x\0y"}},
    ],
)
async def test_what_no_process_could_be_given_is_400(client, body):
    resp = await client.post("/process", json=body)
    assert resp.status == 400, await resp.text()
    assert "NUL" in (error := (await resp.json())["error"]) or "environment variable" in error


async def test_a_lone_surrogate_in_a_command_is_a_replacement_character(client):
    resp = await client.post(
        "/process",
        data='{"command": "echo \\ud800", "waitForCompletion": true}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["stdout"] == "\ufffd\n"
