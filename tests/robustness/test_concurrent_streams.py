"""200 live log streams and 200 watches held open at once: all get their data, all end,
and the daemon keeps answering.

200 watches is more than the kernel's default of 128 inotify instances per user, and
an idle watch must cost no thread and no CPU: the daemon shares one instance."""

from __future__ import annotations

import asyncio
import json
import os
import time

import aiohttp
import pytest

from tests.conftest import kill_leftovers

from .support import HealthProbe, marker, parse_log_stream, settle, snapshot

STREAMS = 200
WATCHES = 200
LINES = 30


def ticker(k: int, gate: str, mark: str) -> str:
    """Says it is ready, waits at the gate (a FIFO: one newline each), then writes
    LINES lines on each stream in bursts."""
    return (
        f": {mark}; echo ready {k}; read g < {gate}; i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); "
        f'echo "s{k} out $i é€😀"; echo "s{k} err $i" >&2; [ $((i % 10)) -eq 0 ] && sleep 0.2; done; true'
    )


async def follow_log(
    session: aiohttp.ClientSession, k: int, attached: asyncio.Event, counter: list[int]
) -> tuple[bytes, float]:
    """The whole body of a live log stream; when it ended."""
    async with session.get(f"/process/s{k}/logs/stream") as resp:
        assert resp.status == 200
        first = await resp.content.readline()
        assert first == f"stdout:ready {k}\n".encode(), first
        counter[0] += 1
        if counter[0] == STREAMS:
            attached.set()
        rest = await resp.read()
    return first + rest, time.monotonic()


async def open_watch(session: aiohttp.ClientSession, directory: str) -> aiohttp.ClientResponse:
    resp = await session.get(f"/watch/filesystem/{directory}")
    assert resp.status == 200, await resp.text()
    assert await asyncio.wait_for(resp.content.readline(), 30) == b"[keepalive]\n"  # armed
    return resp


async def watch_sees(resp: aiohttp.ClientResponse, name: str) -> None:
    while True:
        line = (await resp.content.readline()).decode()
        assert line, "watch ended before the change"
        if line.startswith("[keepalive]"):
            continue
        event = json.loads(line)
        if event["op"] == "CREATE" and event["name"] == name:
            return


async def warm_up(session: aiohttp.ClientSession, tmp_path) -> None:
    """Start the worker threads the daemon keeps (its executor) before the baseline."""
    area = tmp_path / "warm"
    area.mkdir()
    watches = await asyncio.gather(*(open_watch(session, str(area)) for _ in range(20)))
    for resp in watches:
        resp.close()
    puts = await asyncio.gather(*(session.put(f"/filesystem/{area}/f{i}", json={"content": "x"}) for i in range(20)))
    for resp in puts:
        assert resp.status == 200
        resp.release()
    await asyncio.sleep(0.5)


@pytest.mark.timeout(180)
async def test_two_hundred_log_streams_and_two_hundred_watches_at_once(daemon_factory, tmp_path):
    mark = marker()
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    gate_fd = os.open(gate, os.O_RDWR | os.O_NONBLOCK)  # readers never block on open
    daemon = daemon_factory()
    daemon.start()
    watched = [tmp_path / "watched" / f"w{k}" for k in range(WATCHES)]
    for directory in watched:
        directory.mkdir(parents=True)
    watches: list[aiohttp.ClientResponse] = []
    connector = aiohttp.TCPConnector(limit=0)
    probe = HealthProbe(daemon.port)
    try:
        async with aiohttp.ClientSession(
            daemon.url, connector=connector, timeout=aiohttp.ClientTimeout(total=150)
        ) as session:
            await warm_up(session, tmp_path)
            baseline = snapshot(daemon.proc.pid)
            probe.start()
            for start in range(0, STREAMS, 50):
                started = await asyncio.gather(
                    *(
                        session.post("/process", json={"command": ticker(k, str(gate), mark), "name": f"s{k}"})
                        for k in range(start, min(STREAMS, start + 50))
                    )
                )
                for resp in started:
                    assert resp.status == 200, await resp.text()
                    resp.release()
            attached = asyncio.Event()
            counter = [0]
            logs = [asyncio.ensure_future(follow_log(session, k, attached, counter)) for k in range(STREAMS)]
            await asyncio.wait_for(attached.wait(), 60)
            for start in range(0, WATCHES, 50):
                watches += await asyncio.gather(*(open_watch(session, str(d)) for d in watched[start : start + 50]))
            held = snapshot(daemon.proc.pid)
            assert all(not t.done() for t in logs), "a log stream ended before its process"
            # Open streams and watches cost descriptors, not threads.
            assert held.threads <= baseline.threads + 4, f"threads {baseline.threads} -> {held.threads} while held"

            opened = time.monotonic()
            os.write(gate_fd, b"\n" * STREAMS)  # every ticker goes
            for k, directory in enumerate(watched):
                (directory / f"new-{k}").write_text("x")
            await asyncio.wait_for(
                asyncio.gather(*(watch_sees(resp, f"new-{k}") for k, resp in enumerate(watches))), 60
            )
            watched_at = time.monotonic()
            done = await asyncio.wait_for(asyncio.gather(*logs), 90)
            ended_at = max(end for _, end in done)

            for k, (body, _) in enumerate(done):
                stream = parse_log_stream(body)
                assert stream.other == [], stream.other[:3]
                assert stream.stdout == f"ready {k}\n" + "".join(f"s{k} out {i} é€😀\n" for i in range(1, LINES + 1))
                assert stream.stderr == "".join(f"s{k} err {i}\n" for i in range(1, LINES + 1))
            async with session.get("/process") as resp:
                statuses = {p["name"]: p["status"] for p in await resp.json()}
            assert all(statuses[f"s{k}"] == "completed" for k in range(STREAMS))

            for resp in watches:
                resp.close()  # the client goes away
            watches.clear()
            probe.stop()
        # Every connection is closed now (the log streams' were kept alive until here).
        released = await settle(daemon.proc.pid, baseline, fd_slack=8, thread_slack=4, timeout=10)
        print(
            f"\nthreads {baseline.threads} -> {held.threads} (held) -> {released.threads}; "
            f"fds {baseline.fds} -> {held.fds} -> {released.fds}; watches notified in {watched_at - opened:.1f}s, "
            f"streams ended {ended_at - opened:.1f}s after the gate; {probe.summary()}"
        )
        assert ended_at - opened < 60
        assert len(probe.latencies) >= 10
        assert max(probe.latencies) < 5.0, f"/health took {max(probe.latencies):.1f}s under load"
        assert released.fds <= baseline.fds + 8, f"fds {baseline.fds} -> {released.fds}"
        assert released.threads <= baseline.threads + 4, f"threads {baseline.threads} -> {released.threads}"
    finally:
        probe.stop()
        for resp in watches:
            resp.close()
        os.close(gate_fd)
        kill_leftovers(mark)
