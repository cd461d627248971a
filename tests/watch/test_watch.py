"""GET /watch/filesystem: armed before the first line, every change reported, low latency."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app


class Stream:
    """Reads a watch stream line by line."""

    def __init__(self, resp) -> None:
        self.resp = resp
        self.lines: list[str] = []

    async def next_line(self, timeout: float = 5.0) -> str:
        raw = await asyncio.wait_for(self.resp.content.readline(), timeout)
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def events_until(self, predicate, timeout: float = 5.0) -> list[dict]:
        events = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not seen in time; got {events}")
            line = await self.next_line(remaining)
            if line == "[keepalive]":
                continue
            event = json.loads(line)
            events.append(event)
            if predicate(event):
                return events


async def open_watch(client, path: str, **params) -> Stream:
    resp = await client.get(f"/watch/filesystem/{path}", params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    stream = Stream(resp)
    assert await stream.next_line() == "[keepalive]"  # armed
    return stream


async def test_first_line_is_keepalive_then_events_with_their_shape(client, tmp_path):
    stream = await open_watch(client, str(tmp_path))
    (tmp_path / "watched.txt").write_text("x")
    events = await stream.events_until(lambda e: e["name"] == "watched.txt")
    event = events[-1]
    assert list(event) == ["op", "name", "path", "error"]
    assert event == {"op": "CREATE", "name": "watched.txt", "path": str(tmp_path), "error": None}
    os.chmod(tmp_path / "watched.txt", 0o600)
    (tmp_path / "watched.txt").write_text("y")
    await stream.events_until(lambda e: e["op"] == "WRITE" and e["name"] == "watched.txt")
    (tmp_path / "watched.txt").unlink()
    await stream.events_until(lambda e: e["op"] == "REMOVE" and e["name"] == "watched.txt")
    stream.resp.close()


async def test_rename_is_remove_then_create(client, tmp_path):
    (tmp_path / "old.txt").write_text("x")
    stream = await open_watch(client, str(tmp_path))
    os.rename(tmp_path / "old.txt", tmp_path / "new.txt")
    seen = set()
    await stream.events_until(
        lambda e: seen.add((e["op"], e["name"])) or {("REMOVE", "old.txt"), ("CREATE", "new.txt")} <= seen
    )
    stream.resp.close()


async def test_non_recursive_watch_ignores_deeper_changes(client, tmp_path):
    (tmp_path / "sub").mkdir()
    stream = await open_watch(client, str(tmp_path))
    (tmp_path / "sub" / "deep.txt").write_text("x")
    (tmp_path / "top.txt").write_text("x")
    events = await stream.events_until(lambda e: e["name"] == "top.txt")
    assert not any(e["name"] == "deep.txt" for e in events)
    stream.resp.close()


async def test_recursive_watch_sees_new_directories_and_their_files(client, tmp_path):
    (tmp_path / "subdir").mkdir()
    stream = await open_watch(client, f"{tmp_path}/**")
    (tmp_path / "subdir" / "watched.txt").write_text("x")
    await stream.events_until(
        lambda e: e["op"] == "CREATE" and e["name"] == "watched.txt" and e["path"] == f"{tmp_path}/subdir"
    )
    (tmp_path / "subdir" / "watched.txt").unlink()
    await stream.events_until(lambda e: e["op"] == "REMOVE" and e["name"] == "watched.txt")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)  # mkdir -p, then files at once: none may be missed
    for i in range(20):
        (deep / f"f{i}.txt").write_text("x")
    expected = {("CREATE", f"f{i}.txt") for i in range(20)} | {("CREATE", "a"), ("CREATE", "b"), ("CREATE", "c")}
    seen: set = set()
    await stream.events_until(lambda e: seen.add((e["op"], e["name"])) or expected <= seen)
    (tmp_path / "subdir2").mkdir()
    await stream.events_until(lambda e: e["op"] == "CREATE" and e["name"] == "subdir2")
    (tmp_path / "subdir2").rmdir()
    await stream.events_until(lambda e: e["op"] == "REMOVE" and e["name"] == "subdir2")
    stream.resp.close()


async def test_ignore_patterns(client, tmp_path):
    stream = await open_watch(client, f"{tmp_path}/**", ignore="ignored.txt,ignored-folder")
    (tmp_path / "ignored.txt").write_text("x")
    (tmp_path / "ignored-folder").mkdir()
    (tmp_path / "ignored-folder" / "inside.txt").write_text("x")
    (tmp_path / "watched.txt").write_text("x")
    events = await stream.events_until(lambda e: e["name"] == "watched.txt")
    await asyncio.sleep(0.3)
    names = {e["name"] for e in events}
    assert not names & {"ignored.txt", "ignored-folder", "inside.txt"}
    stream.resp.close()


async def test_events_arrive_fast(client, tmp_path):
    stream = await open_watch(client, str(tmp_path))
    latencies = []
    for i in range(10):
        started = time.monotonic()
        (tmp_path / f"fast{i}.txt").write_text("x")
        await stream.events_until(lambda e, i=i: e["name"] == f"fast{i}.txt")
        latencies.append(time.monotonic() - started)
    latencies.sort()
    assert latencies[5] < 0.1, latencies  # generous: measured in bench/, not asserted tightly
    stream.resp.close()


async def test_keepalive_lines_while_quiet(settings, tmp_path):
    app = build_app(replace(settings, log_stream_keepalive=0.2))
    async with TestClient(TestServer(app)) as c:
        stream = await open_watch(c, str(tmp_path))
        assert await stream.next_line(2) == "[keepalive]"
        stream.resp.close()


async def test_bad_paths(client, tmp_path):
    resp = await client.get(f"/watch/filesystem/{tmp_path}/missing")
    assert resp.status == 404 and "error" in await resp.json()
    (tmp_path / "file").write_text("x")
    resp = await client.get(f"/watch/filesystem/{tmp_path}/file")
    assert resp.status == 400 and await resp.json() == {"error": "path is not a directory"}


def inotify_watches() -> int:
    """inotify watch descriptors held by this process (every instance)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/self/fdinfo/{fd}") as f:
                    count += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return count


async def test_watcher_is_released_when_the_client_leaves(client, tmp_path):
    area = tmp_path / "area"
    (area / "sub").mkdir(parents=True)
    before = inotify_watches()
    streams = [await open_watch(client, str(area)) for _ in range(5)]
    streams.append(await open_watch(client, f"{area}/**"))
    assert inotify_watches() == before + 2  # area (shared by all) and sub
    for stream in streams:
        stream.resp.close()
    deadline = time.monotonic() + 5
    while inotify_watches() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert inotify_watches() == before


@pytest.mark.skipif(shutil.which("inotifywait") is None, reason="inotify-tools not installed")
async def test_sees_everything_inotifywait_sees(client, tmp_path):
    root = tmp_path / "burst"
    root.mkdir()
    log = tmp_path / "inotify.log"
    waiter = subprocess.Popen(
        [
            "inotifywait",
            "-m",
            "-r",
            "-q",
            "-e",
            "create,modify,delete,moved_to,moved_from",
            "--format",
            "%w%f",
            str(root),
        ],
        stdout=open(log, "w"),
        stderr=subprocess.DEVNULL,
    )
    stream = await open_watch(client, f"{root}/**")
    await asyncio.sleep(0.5)  # inotifywait has no readiness signal
    script = (
        f"for i in $(seq 1 20); do mkdir -p {root}/d$i/x/y; for j in 1 2 3; do echo $j > {root}/d$i/x/y/f$j; done; done"
    )
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    expected = {f"{root}/d{i}/x/y/f{j}" for i in range(1, 21) for j in range(1, 4)}
    seen: set[str] = set()
    await stream.events_until(lambda e: seen.add(f"{e['path']}/{e['name']}") or expected <= seen, timeout=10)
    await asyncio.sleep(0.5)
    waiter.terminate()
    waiter.wait()
    theirs = set(log.read_text().split())
    assert theirs - seen == set()
    stream.resp.close()


def _inotify_instances() -> int:
    """inotify instances this process (the in-process daemon) holds."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            pass  # closed meanwhile (the listing's own fd)
    return count


async def test_watches_and_followed_logs_share_one_inotify_instance(client, tmp_path):
    """One instance per daemon, whatever it follows: the kernel allows 128 per user by
    default, and each process or container sharing the uid counts against it."""
    from tests.helpers import run

    dirs = [tmp_path / f"d{i}" for i in range(3)]
    for d in dirs:
        d.mkdir()
    watches = [await open_watch(client, str(d) + "/**") for d in dirs]
    body = await run(client, "for i in 1 2 3; do echo $i; sleep 0.2; done", name="followed")
    try:
        assert _inotify_instances() == 1
        (dirs[0] / "f").write_text("x")  # the watch still sees its events
        events = await watches[0].events_until(lambda e: e["name"] == "f")
        assert events[-1]["op"] in ("CREATE", "WRITE")
        waited = await client.get(f"/process/{body['pid']}/wait?timeout=10")
        assert (await waited.json())["status"] == "completed"
        logs = await (await client.get(f"/process/{body['pid']}/logs")).json()
        assert logs["stdout"] == "1\n2\n3\n"
    finally:
        for watch in watches:
            watch.resp.close()
