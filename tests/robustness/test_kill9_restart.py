"""kill -9 of the daemon in the middle of everything: a log stream, an NDJSON exec
stream, a streamed upload and a multipart upload. After a restart on the same state
dir the processes are listed with the right statuses, their logs are complete (what
they wrote while no daemon ran included), no partial file is visible at the upload
target, and the multipart upload resumes and completes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import kill_leftovers
from tests.helpers import pid_alive, wait_for

from .support import STREAM, files_under, form_body, form_prefix, marker, parse_log_stream, put_head, temp_like

LINES = 30  # one a 100 ms on each stream: 3 s, across the kill and the downtime
OLD = b"old content that a killed upload must not touch\n"
NOTICE = "[Exit status unknown: the process ended while sandbox-api was not running]"


def ticker(name: str, mark: str, release: Path) -> str:
    """LINES lines on each stream, then waits for `release` to exist before it ends."""
    return (
        f": {mark}; i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); "
        f"echo {name} out $i; echo {name} err $i >&2; sleep 0.1; done; "
        f"while [ ! -e {release} ]; do sleep 0.05; done"
    )


def expected(name: str, stream: str) -> str:
    return "".join(f"{name} {stream} {i}\n" for i in range(1, LINES + 1))


async def ok_json(resp: aiohttp.ClientResponse) -> dict:
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def open_partial(port: int, head: str, sent: bytes) -> asyncio.StreamWriter:
    """A request whose body stops half-way, the connection held open."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + sent)
    await writer.drain()
    return writer


def check_ticker_output(name: str, stdout: str, stderr: str, status: dict) -> None:
    """Every line once, in order; the only extra line allowed is the notice of an exit
    status that could not be known (then the status says so)."""
    out_lines = stdout.splitlines(keepends=True)
    extra = [line for line in out_lines if not line.startswith(f"{name} out ")]
    assert "".join(line for line in out_lines if line.startswith(f"{name} out ")) == expected(name, "out")
    assert stderr == expected(name, "err")
    if status["exitCode"] == -1:
        assert status["status"] == "failed"
        assert [line.strip() for line in extra if line.strip()] == [NOTICE]
    else:
        assert status["status"] == "completed" and status["exitCode"] == 0, status
        assert [line for line in extra if line.strip()] == []


@pytest.mark.timeout(120)
async def test_kill_9_mid_stream_and_mid_upload_then_restart(daemon_factory, tmp_path):
    mark = marker()
    area = tmp_path / "area"
    area.mkdir()
    target = area / "streamed.bin"
    target.write_bytes(OLD)
    s3_target = area / "assembled.bin"
    parts = [os.urandom(700_000) for _ in range(4)]
    release, end_now = tmp_path / "release", tmp_path / "end-now"
    first = daemon_factory()
    first.start()
    writers: list[asyncio.StreamWriter] = []
    try:
        async with aiohttp.ClientSession(first.url) as session:
            body = await ok_json(
                await session.post(
                    "/process",
                    json={
                        "command": f": {mark}; echo done-before; exit 5",
                        "name": "finished",
                        "waitForCompletion": True,
                    },
                )
            )
            assert body["status"] == "failed" and body["exitCode"] == 5
            await ok_json(
                await session.post("/process", json={"command": ticker("logged", mark, release), "name": "logged"})
            )
            ending = await ok_json(
                await session.post(
                    "/process",
                    json={
                        "command": f": {mark}; while [ ! -e {end_now} ]; do sleep 0.05; done; echo bye; exit 3",
                        "name": "ends-while-down",
                    },
                )
            )
            log_stream = await session.get("/process/logged/logs/stream")
            assert log_stream.status == 200
            exec_stream = await session.post(
                "/process", json={"command": ticker("execd", mark, release), "name": "execd"}, headers=STREAM
            )
            assert exec_stream.status == 200
            assert (await log_stream.content.readline()).startswith(b"std")  # both flow
            assert json.loads(await exec_stream.content.readline())["type"] in ("stdout", "stderr")

            upload_id = (await ok_json(await session.post(f"/filesystem-multipart/initiate/{s3_target}", json={})))[
                "uploadId"
            ]
            etags = {}
            for number in (1, 2):
                resp = await session.put(
                    f"/filesystem-multipart/{upload_id}/part?partNumber={number}", data=form_body(parts[number - 1])
                )
                etags[number] = (await ok_json(resp))["etag"]

            # In flight at the kill: a streamed PUT and part 3, both half sent.
            writers.append(
                await open_partial(first.port, put_head(f"/filesystem/{target}", 10 << 20), b"n" * (3 << 20))
            )
            boundary = uuid.uuid4().hex
            writers.append(
                await open_partial(
                    first.port,
                    put_head(
                        f"/filesystem-multipart/{upload_id}/part?partNumber=3",
                        4 << 20,
                        f"multipart/form-data; boundary={boundary}",
                    ),
                    form_prefix(boundary) + parts[2][:300_000],
                )
            )
            await asyncio.sleep(0.5)
            first.stop(signal.SIGKILL)

            # Both streams end at once, and visibly cut: no clean end of the chunked body.
            for resp in (log_stream, exec_stream):
                with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
                    await asyncio.wait_for(resp.read(), 10)
        for writer in writers:
            writer.close()
        end_now.touch()
        await wait_for(lambda: not pid_alive(int(ending["pid"])), timeout=10)  # over with no daemon
        await asyncio.sleep(1.0)  # the tickers go on writing with no daemon at all

        second = daemon_factory(state_dir=first.state_dir)
        second.start()
        async with aiohttp.ClientSession(second.url) as session:
            listing = {p["name"]: p for p in await ok_json(await session.get("/process"))}
            assert set(listing) == {"finished", "logged", "execd", "ends-while-down"}
            assert listing["finished"]["status"] == "failed" and listing["finished"]["exitCode"] == 5
            assert listing["finished"]["logs"] == "done-before\n"
            assert listing["logged"]["status"] == "running" and listing["execd"]["status"] == "running"
            gone = listing["ends-while-down"]
            assert gone["status"] == "failed" and gone["exitCode"] == -1
            assert gone["stdout"] == f"bye\n\n{NOTICE}\n"

            # A log stream of the adopted process: everything from the first line, then
            # live lines, until it ends.
            resp = await session.get("/process/logged/logs/stream", timeout=aiohttp.ClientTimeout(total=30))
            assert resp.status == 200
            release.touch()
            replay = parse_log_stream(await resp.read())
            for name in ("logged", "execd"):
                status = await ok_json(await session.get(f"/process/{name}/wait?timeout=20"))
                assert status["status"] != "running"
                logs = await ok_json(await session.get(f"/process/{name}/logs"))
                check_ticker_output(name, logs["stdout"], logs["stderr"], status)
            status = await ok_json(await session.get("/process/logged"))
            check_ticker_output("logged", replay.stdout, replay.stderr, status)

            # The killed streamed upload left the old file and nothing else.
            assert target.read_bytes() == OLD
            assert sorted(os.listdir(area)) == ["streamed.bin"]

            # The part cut by the kill is not left on disk (it could be gigabytes).
            staged = files_under(second.state_dir / "uploads")
            assert temp_like(staged) == [], staged
            # The multipart upload goes on: parts 1 and 2 are there, 3 (cut) is not.
            listed = await ok_json(await session.get(f"/filesystem-multipart/{upload_id}/parts"))
            assert [(p["partNumber"], p["etag"]) for p in listed["parts"]] == [(1, etags[1]), (2, etags[2])]
            for number in (3, 4):
                resp = await session.put(
                    f"/filesystem-multipart/{upload_id}/part?partNumber={number}", data=form_body(parts[number - 1])
                )
                etags[number] = (await ok_json(resp))["etag"]
            await ok_json(
                await session.post(
                    f"/filesystem-multipart/{upload_id}/complete",
                    json={
                        "parts": [{"partNumber": n, "etag": etags[n]} for n in (1, 2, 3, 4)],
                    },
                )
            )
        assert hashlib.sha256(s3_target.read_bytes()).hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()
        assert sorted(os.listdir(area)) == ["assembled.bin", "streamed.bin"]
        state = files_under(second.state_dir)
        assert temp_like(state) == [] and [f for f in state if f.startswith("uploads/")] == []
    finally:
        for writer in writers:
            writer.close()
        kill_leftovers(mark)
