"""The official Python SDK (`blaxel`) sends an `Idempotency-Key` through its configurable
headers: a call made again with the same key does not run or write twice."""

from __future__ import annotations

import uuid
from pathlib import Path

from blaxel.core import SandboxInstance
from blaxel.core.client.models import Metadata, Sandbox, SandboxSpec


def keyed(url: str, key: str) -> SandboxInstance:
    record = Sandbox(metadata=Metadata(name="local"), spec=SandboxSpec())
    return SandboxInstance(record, force_url=url, headers={"Idempotency-Key": key})


async def test_an_sdk_exec_sent_twice_with_one_key_runs_once(sdk_daemon, tmp_path: Path):
    counter = tmp_path / f"count-{uuid.uuid4().hex[:8]}"
    sandbox = keyed(sdk_daemon.url, str(uuid.uuid4()))
    request = {"command": f"echo run >> {counter}; echo hi", "wait_for_completion": True}
    first = await sandbox.process.exec(request)
    second = await sandbox.process.exec(request)
    assert first.status == second.status == "completed"
    assert second.pid == first.pid and second.logs == "hi\n"
    assert counter.read_text() == "run\n"


async def test_an_sdk_file_write_sent_twice_with_one_key_writes_once(sdk_daemon):
    target = Path(sdk_daemon.workdir) / f"idem-{uuid.uuid4().hex[:8]}.txt"
    sandbox = keyed(sdk_daemon.url, str(uuid.uuid4()))
    await sandbox.fs.write(str(target), "first")
    before = target.stat()
    await sandbox.fs.write(str(target), "first")
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert target.read_text() == "first"
