"""The two output streams: NDJSON exec stream and the plain-text log stream."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import replace

from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from tests.helpers import ndjson, run, run_and_wait

STREAM = {"Accept": "text/event-stream"}


async def exec_stream(client, command: str, **fields) -> tuple[str, list[dict]]:
    resp = await client.post("/process", json={"command": command, **fields}, headers=STREAM)
    assert resp.status == 200
    return resp.headers["Content-Type"], ndjson((await resp.read()).decode())


async def test_ndjson_stream_carries_output_then_the_result(client):
    ctype, events = await exec_stream(
        client, "echo line1; echo line2; echo 'error line' >&2; sleep 0.1; echo line3; echo line4", name="nd"
    )
    assert ctype == "application/x-ndjson"
    assert events[-1]["type"] == "result"
    assert all(e["type"] != "result" for e in events[:-1])
    stdout = "\n".join(e["data"] for e in events if e["type"] == "stdout")
    stderr = "\n".join(e["data"] for e in events if e["type"] == "stderr")
    assert stdout.split("\n") == ["line1", "line2", "line3", "line4"]
    assert stderr == "error line"
    result = json.loads(events[-1]["data"])
    assert result["status"] == "completed" and result["exitCode"] == 0 and result["name"] == "nd"
    assert result["stdout"] == "line1\nline2\nline3\nline4\n"
    assert result["stderr"] == "error line\n"
    assert result["completedAt"]


async def test_ndjson_stream_of_a_failing_command(client):
    _, events = await exec_stream(client, "echo before; exit 42")
    result = json.loads(events[-1]["data"])
    assert result["status"] == "failed" and result["exitCode"] == 42
    assert [e["data"] for e in events if e["type"] == "stdout"] == ["before"]


async def test_ndjson_stream_of_an_instant_command_still_has_its_output(client):
    _, events = await exec_stream(client, "echo recipe-stream")
    assert {"type": "stdout", "data": "recipe-stream"} in events


async def test_ndjson_without_accept_header_is_plain_json(client):
    resp = await client.post("/process", json={"command": "echo hi", "waitForCompletion": True})
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_ndjson_preflight_errors_stay_json_400(client):
    resp = await client.post("/process", json={"command": ""}, headers=STREAM)
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_ndjson_spawn_error_is_an_error_response(client):
    resp = await client.post("/process", json={"command": "pwd", "workingDir": "/no/such/dir"}, headers=STREAM)
    assert resp.status == 422
    assert "does not exist" in (await resp.json())["error"]


async def test_ndjson_keepalive_events_while_quiet(settings):
    app = build_app(replace(settings, exec_stream_keepalive=0.2))
    async with TestClient(TestServer(app)) as c:
        _, events = await exec_stream(c, "sleep 0.7; echo end")
    assert {"type": "keepalive"} in events
    assert not any(e.get("data") == "[keepalive]" for e in events)
    assert events[-1]["type"] == "result"


async def test_ndjson_stream_ends_at_the_final_outcome_after_restarts(client):
    _, events = await exec_stream(client, "echo try; exit 3", restartOnFailure=True, maxRestarts=2)
    result = json.loads(events[-1]["data"])
    assert result["restartCount"] == 2 and result["status"] == "failed"
    text = "\n".join(e.get("data", "") for e in events if e["type"] == "stdout")
    assert text.count("try") == 3
    assert "Attempting restart 2/2" in text


async def test_log_stream_follows_a_ticker_promptly(client):
    await run(client, "for i in 1 2 3 4 5; do echo tick$i; sleep 0.05; done", name="ticker")
    started = time.monotonic()
    resp = await client.get("/process/ticker/logs/stream")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    text = (await resp.read()).decode()
    assert time.monotonic() - started < 2
    lines = [line for line in text.splitlines() if line.startswith("stdout:") and "tick" in line]
    assert lines == [f"stdout:tick{i}" for i in range(1, 6)]


async def test_log_stream_sends_each_line_once_and_closes(client):
    cases = {
        "multi": "echo M1; echo M2; echo M3",
        "mixed": "echo OUT1; echo ERR1 >&2; echo OUT2; echo ERR2 >&2",
        "instant": "echo ONLY",
    }
    for name, command in cases.items():
        await run(client, command, name=name)
        text = (await (await client.get(f"/process/{name}/logs/stream")).read()).decode()
        for marker in (
            ("M1", "M2", "M3")
            if name == "multi"
            else ("OUT1", "ERR1", "OUT2", "ERR2")
            if name == "mixed"
            else ("ONLY",)
        ):
            assert text.count(marker) == 1, (name, text)
    mixed = (await (await client.get("/process/mixed/logs/stream")).read()).decode()
    assert "stderr:ERR1\n" in mixed and "stdout:OUT1\n" in mixed


async def test_every_line_of_a_multi_line_write_is_prefixed(client):
    await run_and_wait(client, "printf 'a\\nb\\nc\\n'; printf 'x\\ny\\n' >&2", name="prefixed")
    text = (await (await client.get("/process/prefixed/logs/stream")).read()).decode()
    assert text.splitlines() == ["stdout:a", "stdout:b", "stdout:c", "stderr:x", "stderr:y"]


async def test_partial_last_line_and_long_line_are_delivered_whole(client):
    await run_and_wait(client, "printf abc; printf 'x%.0s' $(seq 1 10000) >&2", name="partial")
    text = (await (await client.get("/process/partial/logs/stream")).read()).decode()
    assert text == "stdout:abc\nstderr:" + "x" * 10000 + "\n"


async def test_replay_of_a_finished_process_then_close(client):
    await run_and_wait(client, "seq 1 1000", name="replay")
    for _ in range(2):  # the SDK reconnects and expects the same replay each time
        text = (await (await client.get("/process/replay/logs/stream")).read()).decode()
        assert text.splitlines() == [f"stdout:{i}" for i in range(1, 1001)]


async def test_attaching_while_output_flows_never_duplicates_or_skips(client):
    command = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i; [ $((i % 300)) -eq 0 ] && sleep 0.02; done"
    await run(client, command, name="flow")
    streams = []
    for delay in (0.0, 0.05, 0.1, 0.2):
        await asyncio.sleep(delay)
        streams.append(asyncio.ensure_future(client.get("/process/flow/logs/stream")))
    for future in streams:
        resp = await future
        text = (await resp.read()).decode()
        assert text.splitlines() == [f"stdout:{i}" for i in range(1, 3001)]


async def test_multibyte_utf8_split_across_writes_is_never_garbled(client):
    # "é" is C3 A9 and "€" is E2 82 AC: write them a byte at a time, with pauses.
    command = (
        "printf '\\303'; sleep 0.1; printf '\\251\\342'; sleep 0.1; printf '\\202'; sleep 0.1; printf '\\254 ok\\n'"
    )
    await run(client, command, name="utf8")
    stream = asyncio.ensure_future(client.get("/process/utf8/logs/stream"))
    text = (await (await stream).read()).decode()
    assert text == "stdout:é€ ok\n"
    logs = await (await client.get("/process/utf8/logs")).json()
    assert logs["stdout"] == "é€ ok\n"
    _, events = await exec_stream(client, command)
    assert [e["data"] for e in events if e["type"] == "stdout"] == ["é€ ok"]


async def test_invalid_utf8_becomes_replacement_character(client):
    body = await run_and_wait(client, "printf 'a\\377b\\n'", name="bad-utf8")
    assert body["stdout"] == "a\ufffdb\n"
    text = (await (await client.get("/process/bad-utf8/logs/stream")).read()).decode()
    assert text == "stdout:a\ufffdb\n"


async def test_log_stream_keepalive_lines_while_quiet(settings):
    app = build_app(replace(settings, log_stream_keepalive=0.2))
    async with TestClient(TestServer(app)) as c:
        await run(c, "sleep 0.7; echo late", name="quiet")
        text = (await (await c.get("/process/quiet/logs/stream")).read()).decode()
    assert "[keepalive]\n" in text
    assert text.endswith("stdout:late\n")


async def test_stream_disconnect_leaves_the_process_running(client):
    await run(client, "for i in $(seq 1 20); do echo $i; sleep 0.05; done", name="detach")
    resp = await client.get("/process/detach/logs/stream")
    await resp.content.readline()
    resp.close()
    body = await (await client.get("/process/detach/wait?timeout=10")).json()
    assert body["status"] == "completed"
    assert body["stdout"].splitlines() == [str(i) for i in range(1, 21)]


async def test_stop_notice_reaches_the_stream(client):
    await run(client, "echo started; sleep 30", name="noticed")
    stream = asyncio.ensure_future(client.get("/process/noticed/logs/stream"))
    await asyncio.sleep(0.3)
    assert (await client.delete("/process/noticed")).status == 200
    text = (await (await stream).read()).decode()
    assert "stdout:started\n" in text
    assert "stdout:[Process is being gracefully terminated]\n" in text


def _send_buffer(server_port: int, client_port: int) -> int:
    """The kernel's send buffer (`tb`, as it counts it: twice SO_SNDBUF) of the daemon's
    side of one connection, from `ss`."""
    import re
    import subprocess

    out = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"( sport = :{server_port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    found = re.search(r"\btb(\d+)", out)
    assert found, out
    return int(found.group(1))


async def test_only_a_client_that_keeps_up_earns_the_large_send_buffer(client):
    """A stalled reader keeps the small kernel send buffer (1,000 of them must not make the
    daemon copy a MiB each); a client that takes what it is sent gets the large one."""
    body = await run(client, "head -c 16777216 /dev/zero | tr '\\0' 'x' | fold -w 100", name="big-sndbuf")
    await client.get(f"/process/{body['pid']}/wait?timeout=30")
    port = client.server.port
    small, large = 2 * 128 * 1024, 2 * 512 * 1024  # the kernel counts twice what is set

    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /process/{body['pid']}/logs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(1.0)  # the daemon fills what it may, then waits
        stalled_port = writer.get_extra_info("sockname")[1]
        assert _send_buffer(port, stalled_port) <= small
    finally:
        writer.close()

    seen = 0
    async with client.session.get(client.make_url(f"/process/{body['pid']}/logs/stream")) as resp:
        fast_port = resp.connection.transport.get_extra_info("sockname")[1]
        async for _ in resp.content.iter_chunked(1 << 16):
            seen = max(seen, _send_buffer(port, fast_port)) if seen < large else seen
    assert seen == large


async def test_ndjson_stream_data_is_the_output_byte_for_byte_across_many_reads(client, tmp_path):
    """A MiB of tricky output (multibyte characters wherever the reads end, a line longer
    than any read step, CR, NUL, escapes, quotes, invalid UTF-8) read back from the events,
    with and without offsets: nothing lost, doubled or garbled."""
    rng = random.Random(11)
    pieces = ["a", "é", "€", "😀", "\r", "\0", "\x1b[0m", '"', "\\", "\t", "\x7f", "\u2028", "word " * 9]
    lines = ["".join(rng.choice(pieces) for _ in range(rng.choice((1, 3, 15, 100, 700)))) for _ in range(4000)]
    lines.insert(2000, "€😀" * 45_000)  # 315 KB in one line: longer than the largest read step
    content = ("\n".join(lines) + "\n").encode() + b"bad \xff\xfe here \xe2\x82\n"
    path = tmp_path / "tricky.txt"
    path.write_bytes(content)
    expected = content.decode("utf-8", "replace")
    for query in ("", "?offsets=true"):
        resp = await client.post(f"/process{query}", json={"command": f"cat {path}"}, headers=STREAM)
        # Split on "\n" only: U+2028 is not escaped, as JSON allows (str.splitlines would split there).
        events = [json.loads(line) for line in (await resp.read()).decode().split("\n") if line]
        output = [e for e in events if e["type"] == "stdout"]
        assert "".join(e["data"] + "\n" for e in output) == expected
        assert json.loads(events[-1]["data"])["exitCode"] == 0
        if query:
            offsets = [e["offset"] for e in output]
            assert offsets == sorted(offsets) and offsets[-1] == len(content)
