"""SOAK (2 minutes of wall time, little CPU): streams held open for two minutes are
never cut. A process writes a line every 100 ms for 50 s, is silent for 36 s, then
writes for 34 s more; its NDJSON exec stream, a log stream attached at its start and
one attached during the silence must each get every line once, in order, live, get
keepalives during the silence, and end cleanly when the process ends."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import pytest

from tests.conftest import kill_leftovers

from .support import STREAM, marker

FIRST, SILENCE, SECOND, STEP = 500, 36.0, 340, 0.1
TICKER = """
import sys, time
first, silence, second, step = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
start = time.monotonic()
for i in range(1, first + second + 1):
    at = (i - 1) * step + (silence if i > first else 0.0)
    time.sleep(max(0.0, start + at - time.monotonic()))
    print(f"line {i} é€😀", flush=True)
    if i % 10 == 0:
        print(f"err {i}", file=sys.stderr, flush=True)
"""


def expected_out() -> list[str]:
    return [f"line {i} é€😀" for i in range(1, FIRST + SECOND + 1)]


def expected_err() -> list[str]:
    return [f"err {i}" for i in range(10, FIRST + SECOND + 1, 10)]


@dataclass
class Received:
    """What a stream delivered, each item with its arrival time."""

    out: list[tuple[float, str]] = field(default_factory=list)
    err: list[tuple[float, str]] = field(default_factory=list)
    keepalives: list[float] = field(default_factory=list)
    result: dict | None = None
    ended: float = 0.0

    def arrivals(self) -> list[float]:
        return sorted([t for t, _ in self.out] + [t for t, _ in self.err] + self.keepalives)


async def read_lines(resp: aiohttp.ClientResponse, on_line) -> float:
    """Feed each line to `on_line` until a clean end (EOF); when it ended. A line must
    come at least every 40 s (keepalives included): a hung stream fails here."""
    while True:
        line = await asyncio.wait_for(resp.content.readline(), 40)
        if not line:
            return time.monotonic()
        assert line.endswith(b"\n"), line
        on_line(time.monotonic(), line[:-1].decode())


async def follow_ndjson(session: aiohttp.ClientSession, command: str) -> Received:
    got = Received()

    def on_line(at: float, line: str) -> None:
        event = json.loads(line)
        assert got.result is None, "an event after the result"
        if event["type"] == "keepalive":
            got.keepalives.append(at)
        elif event["type"] == "result":
            got.result = json.loads(event["data"])
        else:
            target = got.out if event["type"] == "stdout" else got.err
            target.extend((at, text) for text in event["data"].split("\n"))

    async with session.post("/process", json={"command": command, "name": "soak"}, headers=STREAM) as resp:
        assert resp.status == 200
        got.ended = await read_lines(resp, on_line)
    return got


async def follow_log(session: aiohttp.ClientSession, delay: float) -> Received:
    await asyncio.sleep(delay)
    got = Received()

    def on_line(at: float, line: str) -> None:
        if line == "[keepalive]":
            got.keepalives.append(at)
        elif line.startswith("stdout:"):
            got.out.append((at, line[7:]))
        elif line.startswith("stderr:"):
            got.err.append((at, line[7:]))
        else:
            raise AssertionError(f"unexpected line {line!r}")

    for _ in range(200):  # the exec stream creates the process: wait for it to exist
        resp = await session.get("/process/soak/logs/stream")
        if resp.status != 404:
            break
        resp.release()
        await asyncio.sleep(0.05)
    async with resp:
        assert resp.status == 200
        got.ended = await read_lines(resp, on_line)
    return got


def check(name: str, got: Received, started: float, *, live_from: int, keepalive: bool = True) -> None:
    assert [text for _, text in got.out] == expected_out(), f"{name}: stdout lines differ"
    assert [text for _, text in got.err] == expected_err(), f"{name}: stderr lines differ"
    # Live: a line arrives soon after it was written (the schedule is known).
    for i, (at, _) in enumerate(got.out[live_from:], live_from + 1):
        due = started + (i - 1) * STEP + (SILENCE if i > FIRST else 0.0)
        assert at - due < 5.0, f"{name}: line {i} arrived {at - due:.1f}s late"
    # The silence was covered by a keepalive, and the stream ended with the process.
    silent_from = got.out[FIRST - 1][0]
    silent_to = got.out[FIRST][0]
    if keepalive:
        assert any(silent_from < t < silent_to for t in got.keepalives), f"{name}: no keepalive during the silence"
    assert got.ended - got.out[-1][0] < 5.0, f"{name}: ended {got.ended - got.out[-1][0]:.1f}s after the last line"


@pytest.mark.soak
@pytest.mark.timeout(240)
async def test_streams_held_open_for_two_minutes_are_never_cut(daemon_factory, tmp_path):
    mark = marker()
    script = tmp_path / "ticker.py"
    script.write_text(TICKER)
    command = f"{sys.executable} {script} {FIRST} {SILENCE} {SECOND} {STEP} {mark}"
    daemon = daemon_factory()
    daemon.start()
    try:
        async with aiohttp.ClientSession(daemon.url, timeout=aiohttp.ClientTimeout(total=None)) as session:
            started = time.monotonic()
            ndjson, early, late = await asyncio.gather(
                follow_ndjson(session, command),
                follow_log(session, 0.0),
                follow_log(session, FIRST * STEP + 10.0),  # attached during the silence
            )
        print(
            f"\nsoak: {time.monotonic() - started:.0f}s; keepalives: exec {len(ndjson.keepalives)}, "
            f"log {len(early.keepalives)}, late log {len(late.keepalives)}"
        )
        started = ndjson.out[0][0]  # the first line is due at once
        check("exec stream", ndjson, started, live_from=0)
        check("log stream", early, started, live_from=0)
        assert late.out[FIRST - 1][0] < late.out[FIRST][0]
        assert [text for _, text in late.out] == expected_out(), "late log stream: stdout lines differ"
        assert [text for _, text in late.err] == expected_err()
        # Its first 500 lines are a replay; it joined 26 s before the silence ended, less
        # than the log stream's 30 s keepalive period.
        check("late log stream", late, started, live_from=FIRST, keepalive=False)
        # The exec stream's keepalives come every 5 s: the longest quiet spell is short.
        arrivals = ndjson.arrivals()
        assert max(b - a for a, b in itertools.pairwise(arrivals)) < 7.0
        assert len([t for t in ndjson.keepalives if ndjson.out[FIRST - 1][0] < t < ndjson.out[FIRST][0]]) >= 5
        assert ndjson.result is not None and ndjson.result["status"] == "completed" and ndjson.result["exitCode"] == 0
    finally:
        kill_leftovers(mark)
