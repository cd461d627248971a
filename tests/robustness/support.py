"""What the robustness tests share: reading the daemon's streams exactly (as bytes),
looking at the daemon from outside (/proc), raw-socket uploads that stop mid-body,
and tmpfs mounts."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

STREAM = {"Accept": "text/event-stream"}
REPLACEMENT = "\ufffd"


def marker() -> str:
    """A token to put in every command line of a test, for kill_leftovers."""
    return f"robust-{uuid.uuid4().hex[:12]}"


# --- the two output streams, parsed exactly -------------------------------------------


@dataclass
class LogStream:
    """A `/process/{id}/logs/stream` body, split into its streams (every line with its \\n)."""

    stdout: str = ""
    stderr: str = ""
    keepalives: int = 0
    other: list[str] = field(default_factory=list)  # lines with no prefix (notices)
    lines: list[str] = field(default_factory=list)  # every line, in order, without \n


def parse_log_stream(body: bytes) -> LogStream:
    text = body.decode("utf-8")  # strict: the daemon must send valid UTF-8
    result = LogStream()
    assert text == "" or text.endswith("\n"), f"stream does not end with a newline: {text[-200:]!r}"
    out: list[str] = []
    err: list[str] = []
    for line in text.split("\n")[:-1]:
        result.lines.append(line)
        if line.startswith("stdout:"):
            out.append(line[7:] + "\n")
        elif line.startswith("stderr:"):
            err.append(line[7:] + "\n")
        elif line == "[keepalive]":
            result.keepalives += 1
        else:
            result.other.append(line)
    result.stdout = "".join(out)
    result.stderr = "".join(err)
    return result


@dataclass
class ExecStream:
    """An NDJSON exec stream: the output of each stream, rebuilt from its events."""

    events: list[dict[str, Any]]
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    keepalives: int = 0
    result: dict[str, Any] | None = None

    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for line in self.stdout_lines)

    @property
    def stderr(self) -> str:
        return "".join(line + "\n" for line in self.stderr_lines)


def parse_exec_stream(body: bytes) -> ExecStream:
    text = body.decode("utf-8")
    events = [json.loads(line) for line in text.split("\n") if line]
    return exec_stream_of(events)


def exec_stream_of(events: list[dict[str, Any]]) -> ExecStream:
    stream = ExecStream(events)
    for i, event in enumerate(events):
        kind = event["type"]
        if kind in ("stdout", "stderr"):
            data = event.get("data", "")
            target = stream.stdout_lines if kind == "stdout" else stream.stderr_lines
            target.extend(data.split("\n"))  # an event carries complete lines joined by \n
        elif kind == "keepalive":
            stream.keepalives += 1
        elif kind == "result":
            assert i == len(events) - 1, "result is not the last event"
            stream.result = json.loads(event["data"])
        else:
            raise AssertionError(f"unexpected event {event}")
    return stream


def as_stream_text(data: str) -> str:
    """What a stream delivers of `data`: its lines, the last one terminated."""
    return data if data == "" or data.endswith("\n") else data + "\n"


def without_empty_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


# --- the daemon seen from outside ---------------------------------------------------


def _stat_fields(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every child of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0].decode()))
    return found


def zombies_of(pid: int) -> list[int]:
    return [child for child, state in children_of(pid) if state == "Z"]


@dataclass
class Snapshot:
    fds: int
    threads: int
    zombies: int
    rss_mb: float
    fd_targets: list[str]


def snapshot(pid: int) -> Snapshot:
    fd_dir = f"/proc/{pid}/fd"
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(f"{fd_dir}/{fd}"))
        except OSError:
            pass
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return Snapshot(
        fds=len(targets),
        threads=len(os.listdir(f"/proc/{pid}/task")),
        zombies=len(zombies_of(pid)),
        rss_mb=rss / 1024,
        fd_targets=sorted(targets),
    )


async def settle(pid: int, baseline: Snapshot, fd_slack: int, thread_slack: int, timeout: float = 15.0) -> Snapshot:
    """The daemon's snapshot once it is back within the slack (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = snapshot(pid)
        if (
            now.fds <= baseline.fds + fd_slack and now.threads <= baseline.threads + thread_slack and now.zombies == 0
        ) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.2)


def files_under(root: Path) -> list[str]:
    """Every file below `root`, relative, sorted."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def temp_like(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(".tmp") or "/." in "/" + n or ".tmp." in n]


# --- HTTP ---------------------------------------------------------------------------


class HealthProbe:
    """GET /health every `interval` from a thread of its own (so that the test's busy
    event loop does not count as the daemon's latency); each latency, inf for a failure."""

    def __init__(self, port: int, interval: float = 0.1) -> None:
        self.port = port
        self.interval = interval
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/health")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                self.latencies.append(time.monotonic() - started if resp.status == 200 else float("inf"))
            except OSError:
                self.latencies.append(float("inf"))
            self._stop.wait(self.interval)

    def summary(self) -> str:
        if not self.latencies:
            return "/health: no sample"
        return (
            f"/health p50 {percentile(self.latencies, 0.5) * 1000:.0f} ms, p99 {percentile(self.latencies, 0.99) * 1000:.0f} ms, "
            f"max {max(self.latencies) * 1000:.0f} ms over {len(self.latencies)}"
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def raw_request_cut_mid_body(
    port: int,
    head: str,
    sent: bytes,
    *,
    reset: bool = False,
    pause: float = 0.05,
) -> None:
    """Send a request head and part of its body, then go away (FIN, or RST with `reset`)."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + sent)
        await writer.drain()
        await asyncio.sleep(pause)
    finally:
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def put_head(path: str, content_length: int, content_type: str = "application/octet-stream") -> str:
    return (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    )


def form_prefix(boundary: str, filename: str = "f.bin") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def form_body(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="part", content_type="application/octet-stream")
    return form


# --- tmpfs ----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (skips the test when mounting is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
