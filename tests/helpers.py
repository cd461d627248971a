"""Small helpers for tests that talk to the API."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp.test_utils import TestClient


async def run(client: TestClient, command: str, **fields: Any) -> dict[str, Any]:
    """POST /process and return the JSON body (asserting 200)."""
    resp = await client.post("/process", json={"command": command, **fields})
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def run_and_wait(client: TestClient, command: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("timeout", 30)
    return await run(client, command, waitForCompletion=True, **fields)


async def get(client: TestClient, identifier: str) -> dict[str, Any]:
    resp = await client.get(f"/process/{identifier}")
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def wait_status(client: TestClient, identifier: str, predicate, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = await get(client, identifier)
        if predicate(body["status"]):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"status still {body['status']}: {body}")
        await asyncio.sleep(0.05)


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def read_stream(resp) -> str:
    return (await resp.read()).decode()


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")
