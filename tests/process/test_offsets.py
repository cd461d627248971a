"""Output by offset: GET /process/{id}/logs?stdoutOffset=..., resumable streams, 416 past the
cap, 400s, and how each process ended (`endReason`). Real daemon, real processes."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import time
from dataclasses import replace

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from tests.helpers import get, run, run_and_wait, wait_status

# ~1 MB of stdout with multibyte characters (so that windows cut inside them), some stderr.
MEGABYTE_SCRIPT = (
    "import sys\n"
    "for i in range(40000):\n"
    "    sys.stdout.write(f'line {i:06d} é€😀 ' + 'x' * (i % 7) + '\\n')\n"
    "    if i % 4000 == 0: sys.stderr.write(f'err {i}\\n')\n"
)


def expected_megabyte() -> tuple[bytes, bytes]:
    out = b"".join(f"line {i:06d} é€😀 {'x' * (i % 7)}\n".encode() for i in range(40000))
    err = b"".join(f"err {i}\n".encode() for i in range(0, 40000, 4000))
    return out, err


async def page(client: TestClient, identifier: str, **query: object) -> dict:
    resp = await client.get(f"/process/{identifier}/logs", params={k: str(v) for k, v in query.items()})
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_a_megabyte_read_incrementally_by_offset_is_the_output_byte_for_byte(client, tmp_path):
    script = tmp_path / "mb.py"
    script.write_text(MEGABYTE_SCRIPT)
    await run_and_wait(client, f"{sys.executable} {script}", name="mb")
    want_out, want_err = expected_megabyte()
    assert len(want_out) > 1_000_000
    out, err = b"", b""
    offsets = {"stdoutOffset": 0, "stderrOffset": 0}
    reads = 0
    while True:
        body = await page(client, "mb", maxBytes=65536, **offsets)
        reads += 1
        assert len(body["stdout"].encode()) + len(body["stderr"].encode()) <= 65536
        assert body["stdoutOffset"] == offsets["stdoutOffset"] and body["stderrOffset"] == offsets["stderrOffset"]
        out += body["stdout"].encode()
        err += body["stderr"].encode()
        # Cut on character boundaries: the next offset is where the text read ends.
        assert body["stdoutNextOffset"] == offsets["stdoutOffset"] + len(body["stdout"].encode())
        offsets = {"stdoutOffset": body["stdoutNextOffset"], "stderrOffset": body["stderrNextOffset"]}
        if body["stdoutEnded"] and body["stderrEnded"]:
            break
        assert reads < 100
    assert out == want_out and err == want_err
    assert body["stdoutSize"] == len(want_out) and body["stdoutOldestOffset"] == 0
    assert 16 <= reads <= 20  # 64 KiB windows, none wasted
    # Read again at the end: nothing more, still ended.
    again = await page(client, "mb", **offsets)
    assert again["stdout"] == "" and again["stdoutEnded"] and again["stderrEnded"]


async def test_without_offsets_the_answer_is_the_original_one(client):
    await run_and_wait(client, "echo out; echo err >&2", name="plain")
    resp = await client.get("/process/plain/logs")
    assert await resp.json() == {"stdout": "out\n", "stderr": "err\n", "logs": "out\nerr\n"}
    body = await page(client, "plain", stderrOffset=2)
    assert (body["stdout"], body["stderr"], body["stdoutNextOffset"], body["stderrNextOffset"]) == (
        "out\n",
        "r\n",
        4,
        4,
    )
    assert body["encoding"] == "utf-8"


async def test_a_running_process_is_read_as_it_writes_and_ends_after_its_last_byte(client):
    await run(client, "printf 'a\\n'; sleep 0.6; printf 'b'", name="slow")
    await asyncio.sleep(0.3)
    first = await page(client, "slow", stdoutOffset=0)
    assert first["stdout"] == "a\n" and first["stdoutNextOffset"] == 2
    assert first["stdoutEnded"] is False and first["stderrEnded"] is False  # it runs: more may come
    await wait_status(client, "slow", lambda s: s != "running")
    second = await page(client, "slow", stdoutOffset=2)
    assert second["stdout"] == "b" and second["stdoutEnded"] is True and second["stderrEnded"] is True


async def test_a_character_cut_in_two_at_the_live_end_waits_for_its_last_byte(client):
    # é is c3 a9: the first byte alone is not given as text while the process may still write the second.
    await run(client, "printf 'ab\\303'; sleep 0.8; printf '\\251\\n'", name="half")
    await asyncio.sleep(0.4)
    body = await page(client, "half", stdoutOffset=0)
    assert body["stdout"] == "ab" and body["stdoutNextOffset"] == 2 and body["stdoutSize"] == 3
    await wait_status(client, "half", lambda s: s != "running")
    body = await page(client, "half", stdoutOffset=2)
    assert body["stdout"] == "é\n"


async def test_base64_gives_the_exact_bytes(client):
    await run_and_wait(client, "printf 'ok\\377\\376\\000end'", name="raw")
    body = await page(client, "raw", encoding="base64", stdoutOffset=1, maxBytes=5)
    assert base64.b64decode(body["stdout"]) == b"k\xff\xfe\x00e" and body["stdoutNextOffset"] == 6
    assert body["encoding"] == "base64"
    text = await page(client, "raw", stdoutOffset=0)
    assert text["stdout"] == "ok\ufffd\ufffd\x00end"  # as text, invalid bytes read as U+FFFD


async def test_a_window_smaller_than_a_character_gives_that_character_whole(client):
    await run_and_wait(client, "printf 'a\\303\\251\\342\\202\\254\\360\\237\\230\\200'", name="tiny")  # aé€😀
    pieces, offset = [], 0
    while True:
        body = await page(client, "tiny", stdoutOffset=offset, maxBytes=1)
        pieces.append(body["stdout"])
        offset = body["stdoutNextOffset"]
        if body["stdoutEnded"]:
            break
    assert pieces == ["a", "é", "€", "😀"]


async def test_max_bytes_is_shared_between_the_streams(client):
    await run_and_wait(client, "seq 1 1000; seq 1 1000 >&2", name="both")
    body = await page(client, "both", maxBytes=100)
    assert len(body["stdout"]) == 50 and len(body["stderr"]) == 50
    # What stdout does not need goes to stderr.
    body = await page(client, "both", stdoutOffset=3890, maxBytes=100)
    assert len(body["stdout"]) == 3 and len(body["stderr"]) == 97
    capped = await page(client, "both", maxBytes=10**12)  # capped at 16 MiB, not refused
    assert capped["stdoutEnded"] and capped["stderrEnded"]


async def test_bad_offsets_and_limits_are_400(client):
    await run_and_wait(client, "echo 12345", name="small")
    cases = {
        "stdoutOffset=-1": "invalid stdoutOffset: -1 is less than 0",
        "stderrOffset=abc": "invalid stderrOffset: 'abc' is not an integer",
        "stdoutOffset=1.5": "is not an integer",
        "stdoutOffset=7": "invalid stdoutOffset: 7 is past the end of stdout (6 bytes written so far)",
        "stderrOffset=1": "past the end of stderr (0 bytes",
        "maxBytes=0": "invalid maxBytes: 0 is less than 1",
        "encoding=latin1": "invalid query",
    }
    for query, message in cases.items():
        for route in ("logs", "logs/stream"):
            if route == "logs/stream" and query.split("=")[0] in ("maxBytes", "encoding"):
                continue
            resp = await client.get(f"/process/small/{route}?{query}")
            body = await resp.json()
            assert resp.status == 400 and message in body["error"], (route, query, body)
    resp = await client.get("/process/small/logs/stream?format=xml")
    assert resp.status == 400
    resp = await client.get("/process/nope/logs?stdoutOffset=0")
    assert resp.status == 404


async def test_an_offset_the_cap_dropped_is_416_with_the_oldest_offset_kept(settings):
    app = build_app(replace(settings, max_log_file_bytes=256 * 1024, max_log_bytes_total=0))
    async with TestClient(TestServer(app)) as c:
        await run_and_wait(c, "seq 1 400000", name="big")  # about 2.7 MB
        resp = await c.get("/process/big/logs", params={"stdoutOffset": "0"})
        body = await resp.json()
        assert resp.status == 416, body
        oldest = body["stdoutOldestOffset"]
        assert oldest > 2_000_000 and body["stderrOldestOffset"] == 0
        assert "stdoutOffset 0 is older than the oldest byte kept" in body["error"]
        resp = await c.get("/process/big/logs/stream", params={"stdoutOffset": str(oldest - 1)})
        assert resp.status == 416 and (await resp.json())["stdoutOldestOffset"] == oldest
        # From the oldest offset on, every byte is there, up to the last number.
        data = b""
        offset = oldest
        while True:
            part = await page(c, "big", stdoutOffset=offset, maxBytes=1 << 20)
            data += part["stdout"].encode()
            offset = part["stdoutNextOffset"]
            if part["stdoutEnded"]:
                break
        expected = b"".join(b"%d\n" % i for i in range(1, 400001))
        assert data == expected[oldest:]


async def test_the_text_stream_resumes_from_offsets_and_says_where_to_go_on(client):
    await run_and_wait(client, "for i in $(seq 1 50); do echo out$i; echo err$i >&2; done", name="lines")
    full = (await (await client.get("/process/lines/logs/stream")).read()).decode()
    assert "[offsets]" not in full  # the default replay is as before
    resp = await client.get("/process/lines/logs/stream", params={"stdoutOffset": "0", "stderrOffset": "0"})
    annotated = (await resp.read()).decode().splitlines()
    size = sum(len(f"out{i}\n") for i in range(1, 51))
    assert annotated[-1] == f"[offsets] stdout={size} stderr={size}"
    # Resume after out20 and err30: exactly the rest, nothing twice.
    out_offset = sum(len(f"out{i}\n") for i in range(1, 21))
    err_offset = sum(len(f"err{i}\n") for i in range(1, 31))
    resp = await client.get(
        "/process/lines/logs/stream", params={"stdoutOffset": str(out_offset), "stderrOffset": str(err_offset)}
    )
    rest = [line for line in (await resp.read()).decode().splitlines() if not line.startswith("[offsets]")]
    assert [x for x in rest if x.startswith("stdout:")] == [f"stdout:out{i}" for i in range(21, 51)]
    assert [x for x in rest if x.startswith("stderr:")] == [f"stderr:err{i}" for i in range(31, 51)]


async def test_the_ndjson_exec_stream_gives_offsets_when_asked_and_only_then(client):
    command = "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.05; done"
    headers = {"Accept": "text/event-stream"}
    plain = await client.post("/process", json={"command": command}, headers=headers)
    events = [json.loads(x) for x in (await plain.read()).decode().splitlines()]
    assert all(set(e) <= {"type", "data"} for e in events)  # unchanged by default
    resp = await client.post("/process?offsets=true", json={"command": command, "name": "nd"}, headers=headers)
    events = [json.loads(x) for x in (await resp.read()).decode().splitlines()]
    assert events[0]["type"] == "started" and events[0]["data"] == (await get(client, "nd"))["pid"]
    outs = [e for e in events if e["type"] == "stdout"]
    assert "".join(e["data"] + "\n" for e in outs) == "out1\nout2\nout3\n"
    assert outs[-1]["offset"] == 15
    result = json.loads(events[-1]["data"])
    assert events[-1]["type"] == "result" and result["endReason"] == "exited"


async def test_exec_stream_resumed_by_offset_across_a_daemon_restart(daemon_factory):
    first = daemon_factory()
    first.start()
    command = "for i in $(seq 1 40); do echo tick$i; echo tock$i >&2; sleep 0.05; done"
    seen: list[dict] = []
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{first.url}/process?offsets=true",
            json={"command": command},
            headers={"Accept": "text/event-stream"},
        ) as resp:
            async for line in resp.content:
                seen.append(json.loads(line))
                if sum(e["type"] == "stdout" for e in seen) >= 5:
                    break
    first.stop(signal.SIGKILL)
    pid = seen[0]["data"]
    position = {"stdout": 0, "stderr": 0}
    for event in seen:
        if event.get("offset") is not None:
            position[event["type"]] = event["offset"]
    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    async with aiohttp.ClientSession() as http:
        url = f"{second.url}/process/{pid}/logs/stream"
        params = {"format": "ndjson", "stdoutOffset": str(position["stdout"]), "stderrOffset": str(position["stderr"])}
        async with http.get(url, params=params, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            assert resp.status == 200
            rest = [json.loads(line) for line in (await resp.read()).splitlines()]
    events = seen + rest
    ticks = "\n".join(e["data"] for e in events if e["type"] == "stdout").split("\n")
    tocks = "\n".join(e["data"] for e in events if e["type"] == "stderr").split("\n")
    assert ticks == [f"tick{i}" for i in range(1, 41)]  # nothing lost, nothing twice
    assert tocks == [f"tock{i}" for i in range(1, 41)]
    assert rest[-1]["type"] == "result"


async def test_end_reasons(client):
    running = await run(client, "sleep 30", name="r")
    assert "endReason" not in running
    exited = await run_and_wait(client, "exit 3")
    assert (exited["endReason"], exited["exitCode"], exited["status"]) == ("exited", 3, "failed")
    assert "endSignal" not in exited
    signaled = await run_and_wait(client, "kill -SEGV $$")
    assert (signaled["endReason"], signaled["endSignal"], signaled["exitCode"]) == ("signaled", "SIGSEGV", -1)
    resp = await client.delete("/process/r")
    assert resp.status == 200
    stopped = await _ended(client, "r")
    assert (stopped["status"], stopped["endReason"], stopped["endSignal"]) == ("stopped", "stopped", "SIGTERM")
    await run(client, "sleep 30", name="k")
    assert (await client.delete("/process/k/kill")).status == 200
    killed = await _ended(client, "k")
    assert (killed["status"], killed["endReason"], killed["endSignal"]) == ("killed", "killed", "SIGKILL")
    # A stop that the process handles and exits 0 from is still a stop.
    await run(client, "trap 'exit 0' TERM; sleep 30 & wait", name="graceful")
    await asyncio.sleep(0.2)
    await client.delete("/process/graceful")
    graceful = await _ended(client, "graceful")
    assert graceful["endReason"] == "stopped" and graceful["exitCode"] == 0
    # A keepAlive process killed at its timeout.
    await run(client, "sleep 30", name="ka", keepAlive=True, timeout=1)
    timed = await _ended(client, "ka", timeout=10)
    assert (timed["status"], timed["endReason"]) == ("killed", "timeout")


async def _ended(client: TestClient, name: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = await get(client, name)
        if body.get("endReason"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_end_reason_unknown_when_it_ended_while_no_daemon_ran_and_kept_across_restarts(daemon_factory):
    first = daemon_factory()
    first.start()
    async with aiohttp.ClientSession() as http:
        for body in (
            {"command": "sleep 0.5", "name": "while-down"},
            {"command": "exit 4", "name": "done", "waitForCompletion": True},
        ):
            async with http.post(f"{first.url}/process", json=body) as resp:
                assert resp.status == 200
        first.stop(signal.SIGKILL)
        await asyncio.sleep(1.0)
        second = daemon_factory(state_dir=first.state_dir)
        second.start()
        async with http.get(f"{second.url}/process") as resp:
            listing = {p["name"]: p for p in await resp.json()}
    assert listing["while-down"]["endReason"] == "unknown"
    assert listing["done"]["endReason"] == "exited" and listing["done"]["exitCode"] == 4  # journaled
