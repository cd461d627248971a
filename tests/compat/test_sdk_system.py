"""System routes through the official SDK: health, and upgrade of the real binary in
place while a supervised process keeps writing; plus /environment/reload."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from blaxel.core import SandboxInstance
from blaxel.core.client.models import Metadata, Sandbox, SandboxSpec

from tests.binary.conftest import binary  # noqa: F401 - the fixture
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(240)


def sdk(url: str) -> SandboxInstance:
    return SandboxInstance(Sandbox(metadata=Metadata(name="local"), spec=SandboxSpec()), force_url=url)


async def test_health_through_the_sdk(sandbox):
    health = await sandbox.system.health()
    assert health.status == "ok"
    assert health.last_upgrade.status == "idle"
    assert health.upgrade_count == 0
    assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s", health.uptime)


class Releases:
    """A fake GitHub releases server: /download/<version>/sandbox-api-linux-amd64."""

    def __init__(self, files: dict[str, bytes], fail_first: int = 0) -> None:
        self.files = files
        self.fail_first = fail_first
        self.requests: list[str] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503, headers={"Retry-After": "0"})
        version = request.match_info["version"]
        if version not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[version])

    async def __aenter__(self) -> Releases:
        app = web.Application()
        app.router.add_get("/download/{version}/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


class BinaryDaemon:
    """The real binary, run from a copy it may replace."""

    def __init__(self, source: Path, base: Path) -> None:
        self.path = base / "bin" / "sandbox-api"
        self.path.parent.mkdir(parents=True)
        shutil.copy2(source, self.path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / "daemon.log"
        work = base / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
        env.update(SANDBOX_STATE_DIR=str(base / "state"), WORKDIR=str(work), TMPDIR=str(base))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.path), "--host", "127.0.0.1", "-p", str(self.port)], env=env, stdout=log, stderr=log, cwd=work
            )

    async def health(self, session: aiohttp.ClientSession) -> dict | None:
        try:
            async with session.get(f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return await r.json() if r.status == 200 else None
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def wait_for(self, session, predicate, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = await self.health(session)
            if health is not None and predicate(health):
                return health
            assert self.proc.poll() is None, self.log.read_text()
            await asyncio.sleep(0.1)
        raise AssertionError(f"health never matched; last {health}; log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def consecutive(logs: str) -> list[int]:
    numbers = [int(n) for n in re.findall(r"^line-(\d+)$", logs, re.MULTILINE)]
    assert numbers == list(range(len(numbers))), "a line was lost or repeated"
    return numbers


async def test_upgrade_in_place_keeps_processes_and_their_output(binary, tmp_path):  # noqa: F811
    daemon = BinaryDaemon(binary, tmp_path)
    try:
        async with (
            aiohttp.ClientSession() as session,
            Releases({"v9.9.9": binary.read_bytes()}, fail_first=1) as releases,
        ):
            before = await daemon.wait_for(session, lambda h: True)
            sandbox = sdk(daemon.url)
            ticker = await sandbox.process.exec(
                {
                    "name": "ticker",
                    "command": "i=0; while [ $i -lt 100000 ]; do echo line-$i; i=$((i+1)); sleep 0.02; done",
                }
            )
            finisher = await sandbox.process.exec({"name": "finisher", "command": "sleep 4; exit 7"})
            await asyncio.sleep(0.5)

            reply = await sandbox.system.upgrade(version="v9.9.9", base_url=releases.url)
            assert reply.message.startswith("Upgrade initiated")
            after = await daemon.wait_for(session, lambda h: h["upgradeCount"] == 1)
            assert after["lastUpgrade"]["status"] == "completed", after
            assert after["lastUpgrade"]["version"] == "v9.9.9"
            assert after["lastUpgrade"]["downloadUrl"] == f"{releases.url}/download/v9.9.9/sandbox-api-linux-amd64"
            assert after["startedAt"] >= before["startedAt"]
            assert releases.requests[0] == releases.requests[1]  # the 503 was retried
            assert daemon.proc.poll() is None

            # The supervised processes were adopted: same pids, output still flowing, nothing lost.
            process = await sandbox.process.get("ticker")
            assert process.pid == ticker.pid and process.status == "running"
            seen = len(consecutive(await logs(session, daemon, "ticker")))
            await asyncio.sleep(1.0)
            assert len(consecutive(await logs(session, daemon, "ticker"))) > seen
            # An adopted process that ends after the upgrade keeps its exit code.
            done = await sandbox.process.wait("finisher", max_wait=30000)
            assert done.pid == finisher.pid
            assert (done.status, done.exit_code) == ("failed", 7)
            await sandbox.process.kill("ticker")
    finally:
        daemon.stop()
        subprocess.run(["pkill", "-f", "line-\\$i"], check=False)


async def logs(session: aiohttp.ClientSession, daemon: BinaryDaemon, name: str) -> str:
    async with session.get(f"{daemon.url}/process/{name}/logs") as r:
        return (await r.json())["stdout"]


async def test_a_bad_upgrade_leaves_the_daemon_serving(binary, tmp_path):  # noqa: F811
    daemon = BinaryDaemon(binary, tmp_path)
    original = daemon.path.read_bytes()
    not_elf = tmp_path / "not-elf"
    not_elf.write_bytes(b"#!/bin/sh\necho sandbox-api 9\n" + b"x" * 4096)
    try:
        async with aiohttp.ClientSession() as session, Releases({"v1": b"\x7fELF" + b"\0" * 100}) as releases:
            await daemon.wait_for(session, lambda h: True)
            sandbox = sdk(daemon.url)
            cases = [
                ({"version": "v404", "baseUrl": releases.url}, "download", "HTTP 404"),
                ({"version": "v1", "baseUrl": releases.url}, "validate", "bytes"),  # too small
                ({"path": str(not_elf)}, "validate", "not an ELF"),
                ({"path": "/bin/false"}, "validate", "--version exited 1"),
                ({"path": str(tmp_path / "missing")}, "download", "is not a file"),
            ]
            for body, step, error in cases:
                async with session.post(f"{daemon.url}/upgrade", json=body) as r:
                    assert r.status == 200, await r.text()
                health = await daemon.wait_for(session, lambda h: h["lastUpgrade"]["status"] == "failed")
                assert health["lastUpgrade"]["step"] == step, (body, health)
                assert error in health["lastUpgrade"]["error"], (body, health)
                assert health["upgradeCount"] == 0
                assert f"upgrade failed at {step}" in daemon.log.read_text()
            # Still the same daemon and binary; it still works.
            assert daemon.path.read_bytes() == original
            result = await sandbox.process.exec({"command": "echo still-here", "wait_for_completion": True})
            assert result.logs.strip() == "still-here"
            assert not list(daemon.path.parent.glob(".sandbox-api-upgrade-*"))
    finally:
        daemon.stop()


async def test_upgrade_from_a_python_install_is_refused_at_once(client):
    before = (await (await client.get("/health")).json())["lastUpgrade"]
    async with client.post("/upgrade", data=b"not json") as r:
        assert r.status == 409
        body = await r.json()
    assert "pip" in body["error"] and body["error"].startswith("cannot upgrade: ")
    assert (await (await client.get("/health")).json())["lastUpgrade"] == before  # nothing was started


async def test_environment_reload(client, tmp_path, monkeypatch):
    from sandbox_api.system.routes import ENVIRONMENT

    metadata = tmp_path / "metadata.json"
    client.server.app[ENVIRONMENT].metadata_path = str(metadata)
    monkeypatch.setenv("BOOT_ONLY", "boot")
    for key in ("RELOADED_A", "RELOADED_B"):  # recorded, so monkeypatch removes what the reload sets
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)

    async def reload():
        async with client.post("/environment/reload") as r:
            return r.status, await r.json()

    status, body = await reload()
    assert status == 404 and body == {"error": f"open {metadata}: no such file or directory"}
    metadata.write_text(
        json.dumps({"generation": 1, "environment": {"RELOADED_A": "a1", "RELOADED_B": "b1", "BOOT_ONLY": "b2"}})
    )
    assert await reload() == (200, {"generation": 1, "applied": 3, "removed": 0})
    result = await (
        await client.post(
            "/process", json={"command": "echo $RELOADED_A-$RELOADED_B-$BOOT_ONLY", "waitForCompletion": True}
        )
    ).json()
    assert result["stdout"] == "a1-b1-b2\n"
    metadata.write_text(json.dumps({"generation": 2, "environment": {"RELOADED_A": "a2"}}))
    assert await reload() == (200, {"generation": 2, "applied": 1, "removed": 2})
    result = await (
        await client.post(
            "/process",
            json={"command": "echo $RELOADED_A-${RELOADED_B:-gone}-${BOOT_ONLY:-gone}", "waitForCompletion": True},
        )
    ).json()
    assert result["stdout"] == "a2-gone-gone\n"  # BOOT_ONLY was applied by a reload, so a reload may remove it
    metadata.write_text("{not json")
    status, body = await reload()
    assert status == 500 and "invalid metadata document" in body["error"]
