"""Execs start on the spawner thread (linux/spawner.py): the event loop serves on while a
child execs, so what was one step (check the name, start, register) now has a gap."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app

from ..helpers import run_and_wait

pytestmark = pytest.mark.timeout(60)


def thread_names() -> set[str]:
    names = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                names.add(f.read().strip())
        except OSError:
            continue
    return names


async def test_execs_start_on_the_spawner_thread(client):
    done = await run_and_wait(client, "echo hi")
    assert done["stdout"] == "hi\n"
    assert "sbx-spawner" in thread_names()


async def test_concurrent_starts_of_one_name_admit_exactly_one(client):
    body = {"command": "sleep 30", "name": "same"}
    answers = await asyncio.gather(*(client.post("/process", json=body) for _ in range(8)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] + [400] * 7, statuses
    for answer in answers:
        if answer.status == 400:
            assert await answer.json() == {"error": "process with name 'same' already exists and is running"}
    await client.delete("/process/same/kill")


async def test_a_shell_that_cannot_start_is_named_in_the_error(settings):
    broken = replace(settings, shell="/nonexistent/sh")
    async with TestClient(TestServer(build_app(broken))) as client:
        resp = await client.post("/process", json={"command": "true", "waitForCompletion": True})
        assert resp.status == 422
        body = await resp.json()
        assert body["error"].endswith("fork/exec /nonexistent/sh: no such file or directory"), body
        listed = await client.get("/process")
        assert await listed.json() == []  # nothing registered, its log files kept for reuse


async def test_many_concurrent_execs_each_get_their_own_output(client):
    answers = await asyncio.gather(*(run_and_wait(client, f"echo {i}; echo e{i} >&2") for i in range(64)))
    for i, done in enumerate(answers):
        assert done["stdout"] == f"{i}\n" and done["stderr"] == f"e{i}\n", done
        assert done["exitCode"] == 0
