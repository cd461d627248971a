"""Every byte of output, exactly once, never garbled: 1,000 processes over real HTTP.

Each process writes a known mix of stdout and stderr (2-, 3- and 4-byte characters,
lines of every length, empty lines, no final newline, writes that cut characters in
two, instant exits); a handful of big ones put characters across the daemon's read
boundaries (4 KiB, 64 KiB, 256 KiB, 1 MiB). Each is started with an NDJSON exec stream,
then its output is read back three ways: the exec stream it ran under, GET /logs and a
replay of /logs/stream. All three must give back exactly what was written.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import kill_leftovers

from . import bigoutput
from .support import (
    REPLACEMENT,
    STREAM,
    as_stream_text,
    marker,
    parse_exec_stream,
    parse_log_stream,
    without_empty_lines,
)

SMALL = 1000
CONCURRENCY = 48
INLINE_TAIL = 64 * 1024
TRUNCATION = "[... truncated: GET /process/{name}/logs/stream replays all the output kept ...]\n"
_SAFE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:_=+")
_CHARS = [b"a", b"Z", b"0", b" ", "é".encode(), "ü".encode(), "€".encode(), "中".encode(), "😀".encode(), "𝄞".encode()]


@dataclass
class Case:
    name: str
    command: str
    stdout: bytes
    stderr: bytes
    exit_code: int = 0
    long_lines: bool = False  # a line over 1 MiB: streams deliver it in pieces


def _printf(data: bytes, fd: int) -> str:
    escaped = "".join(chr(b) if b in _SAFE else f"\\{b:03o}" for b in data)
    return f"printf '{escaped}'" + (" >&2" if fd == 2 else "")


def _line(rng: random.Random, length: int) -> bytes:
    return b"".join(rng.choice(_CHARS) for _ in range(length))


def small_case(k: int, mark: str) -> Case:
    """Process k: one of ten shapes of output, deterministic in k."""
    rng = random.Random(k)
    writes: list[tuple[int, bytes]] = []
    exit_code = 0
    kind = k % 10
    if kind == 0:  # exits at once, silent
        exit_code = 7 if k % 20 == 0 else 0
    elif kind == 1:  # one unterminated line, then a failure
        writes.append((1, _line(rng, rng.randint(1, 40))))
        exit_code = 1
    elif kind == 2:  # lines of every length on both streams
        count = rng.randint(1, 20)
        for i in range(count):
            end = b"" if i == count - 1 and rng.random() < 0.3 else b"\n"
            writes.append((rng.choice((1, 2)), _line(rng, rng.choice((0, 1, 2, 17, 80, 300))) + end))
    elif kind == 3:  # every line written in pieces cut at random bytes (inside characters)
        for _ in range(rng.randint(3, 6)):
            fd = rng.choice((1, 2))
            data = _line(rng, rng.randint(5, 60)) + b"\n"
            cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
            for a, b in zip([0, *cuts], [*cuts, len(data)]):
                writes.append((fd, data[a:b]))
    elif kind == 4:  # empty lines
        writes += [(1, b"a\n\n\nb\n"), (2, b"\n"), (1, b"\n\n" + _line(rng, 3))]
    elif kind == 5:  # one long line
        writes.append((rng.choice((1, 2)), _line(rng, rng.randint(1500, 4000)) + b"\n"))
    elif kind == 6:  # many short lines
        for i in range(rng.randint(50, 100)):
            writes.append((1, b"%d " % i + _line(rng, rng.randint(0, 8)) + b"\n"))
    elif kind == 7:  # stderr only, unterminated
        writes += [(2, _line(rng, rng.randint(1, 30)) + b"\n") for _ in range(rng.randint(0, 4))]
        writes.append((2, _line(rng, rng.randint(1, 30))))
        exit_code = 2
    elif kind == 8:  # mixed, then a failure
        writes += [(rng.choice((1, 2)), _line(rng, rng.randint(0, 50)) + b"\n") for _ in range(rng.randint(5, 10))]
        exit_code = 3
    else:  # what JSON and terminals care about
        writes += [(1, b'"quoted" back\\slash %s %d 100%\n'), (2, b"\x01\x1b[31mred\x1b[0m\r\n"), (1, b"\ttab\x7f\n")]
    command = "; ".join([f": {mark} {k}", *(_printf(data, fd) for fd, data in writes), f"exit {exit_code}"])
    out = b"".join(data for fd, data in writes if fd == 1)
    err = b"".join(data for fd, data in writes if fd == 2)
    return Case(f"small-{k}", command, out, err, exit_code)


def big_cases(mark: str) -> list[Case]:
    script = Path(bigoutput.__file__)
    cases = []
    for case in bigoutput.CASES:
        out, err = bigoutput.expected(case)
        command = f"{sys.executable} {script} {case} {mark}"
        cases.append(Case(f"big-{case}", command, out, err, long_lines=case in bigoutput.LONG_LINES))
    return cases


def check_text(where: str, got: str, want: str, case: Case, *, stream: bool, ndjson: bool = False) -> None:
    assert REPLACEMENT not in got, f"{case.name}: U+FFFD in {where}"
    if stream:
        want = as_stream_text(want)
    if case.long_lines and stream:
        got, want = got.replace("\n", ""), want.replace("\n", "")
    if ndjson and "\n\n" in "\n" + want:
        # A chunk holding a lone empty line is not sent (it would be an event without data).
        assert without_empty_lines(got) == without_empty_lines(want), f"{case.name}: {where} differs"
        return
    if got != want:
        raise AssertionError(
            f"{case.name}: {where} differs: got {len(got)} chars, want {len(want)}; "
            f"first difference at {_first_difference(got, want)}"
        )


def _first_difference(a: str, b: str) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"{i}: {a[max(0, i - 20) : i + 20]!r} vs {b[max(0, i - 20) : i + 20]!r}"
    return f"{min(len(a), len(b))} (one is a prefix of the other)"


async def live_stream(session: aiohttp.ClientSession, case: Case) -> None:
    """A /logs/stream attached while the process runs (as soon as it exists)."""
    deadline = time.monotonic() + 30
    while True:
        async with session.get(f"/process/{case.name}/logs/stream") as resp:
            if resp.status == 404 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
                continue
            assert resp.status == 200
            live = parse_log_stream(await resp.read())
            break
    assert live.other == []
    check_text("live log stream stdout", live.stdout, case.stdout.decode(), case, stream=True)
    check_text("live log stream stderr", live.stderr, case.stderr.decode(), case, stream=True)


async def run_streamed(session: aiohttp.ClientSession, case: Case) -> None:
    """Start `case` with an NDJSON exec stream and check what the stream carried; a
    big one also gets a log stream attached while it runs."""
    live = asyncio.ensure_future(live_stream(session, case)) if case.name.startswith("big-") else None
    try:
        await _run_streamed(session, case)
    finally:
        if live is not None:
            await live


async def _run_streamed(session: aiohttp.ClientSession, case: Case) -> None:
    async with session.post("/process", json={"command": case.command, "name": case.name}, headers=STREAM) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        body = await resp.read()
    stream = parse_exec_stream(body)
    assert stream.result is not None, f"{case.name}: no result event"
    result = stream.result
    assert result["exitCode"] == case.exit_code, (case.name, result)
    assert result["status"] == ("completed" if case.exit_code == 0 else "failed"), (case.name, result)
    check_text("exec stream stdout", stream.stdout, case.stdout.decode(), case, stream=True, ndjson=True)
    check_text("exec stream stderr", stream.stderr, case.stderr.decode(), case, stream=True, ndjson=True)
    for key, data in (("stdout", case.stdout), ("stderr", case.stderr)):
        if len(data) <= INLINE_TAIL:
            assert result[key] == data.decode(), f"{case.name}: result {key}"
        else:
            marker = TRUNCATION.format(name=case.name)
            assert result[key].startswith(marker), f"{case.name}: result {key} not marked truncated"
            assert data.decode().endswith(result[key][len(marker) :]), f"{case.name}: result {key} tail"


async def read_back(session: aiohttp.ClientSession, case: Case) -> None:
    """GET /logs and a replay of /logs/stream give exactly what the process wrote."""
    async with session.get(f"/process/{case.name}/logs") as resp:
        assert resp.status == 200
        logs = await resp.json()
    check_text("logs stdout", logs["stdout"], case.stdout.decode(), case, stream=False)
    check_text("logs stderr", logs["stderr"], case.stderr.decode(), case, stream=False)
    assert logs["logs"] == logs["stdout"] + logs["stderr"]
    async with session.get(f"/process/{case.name}/logs/stream") as resp:
        assert resp.status == 200
        body = await resp.read()
    replay = parse_log_stream(body)
    assert replay.other == [], f"{case.name}: unprefixed lines {replay.other[:3]}"
    assert replay.keepalives == 0
    check_text("log stream stdout", replay.stdout, case.stdout.decode(), case, stream=True)
    check_text("log stream stderr", replay.stderr, case.stderr.decode(), case, stream=True)


async def bounded(limit: asyncio.Semaphore, work) -> None:
    async with limit:
        await work


@pytest.mark.timeout(240)
async def test_a_thousand_processes_lose_duplicate_and_garble_nothing(daemon_factory, tmp_path):
    mark = marker()
    # No shared log budget: with 1,000 processes it would shrink each file's cap below
    # the big outputs, and their heads would (rightly) be dropped.
    daemon = daemon_factory(env={"SANDBOX_MAX_LOG_BYTES_TOTAL": "0"})
    daemon.start()
    cases = big_cases(mark) + [small_case(k, mark) for k in range(SMALL)]
    timeout = aiohttp.ClientTimeout(total=120)
    limit = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()
    try:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY + 8)
        async with aiohttp.ClientSession(daemon.url, timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(bounded(limit, run_streamed(session, c)) for c in cases))
            ran = time.monotonic()
            await asyncio.gather(*(bounded(limit, read_back(session, c)) for c in cases))
            async with session.get("/process") as resp:
                listing = {p["name"]: p for p in await resp.json()}
        assert len(listing) == len(cases)
        for case in cases:
            assert listing[case.name]["exitCode"] == case.exit_code, listing[case.name]
        print(
            f"\n{len(cases)} processes: run+exec streams {ran - started:.1f}s, read back {time.monotonic() - ran:.1f}s"
        )
    finally:
        kill_leftovers(mark)
