"""Encoding process output for the wire, fast: these loops carry hundreds of MB/s.

Output is handled as bytes. Text that is valid UTF-8 (nearly always) passes through
`bytes.replace`, which runs at gigabytes per second; str round trips and the json
module's escaper are ten times slower. Invalid UTF-8 becomes U+FFFD.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import socket
import sys
import termios
from collections.abc import AsyncIterator, Callable, Iterator

import msgspec
from aiohttp import web

from ..linux import _native
from ..linux.syscalls import release_free_memory

# A long stream holds at most about this much unsent output in user space: past it the
# writer waits for the client (the rest stays on disk), and reads come in small steps.
# The kernel's send buffer is capped too (it autotunes to MBs per socket otherwise, which
# the daemon would fill, at its CPU's cost, for each client that does not read): 128 KiB
# to start with, raised to 512 KiB once the client has taken SEND_BUFFER_EARNED bytes
# without falling behind, and lowered again when it does. At 128 KiB a loopback client is
# held to ~110 MB/s (too little in flight), at 512 KiB it reads 250+ MB/s; but a buffer
# that large for every stalled client made 1,000 of them cost the loop seconds of copying
# (/health p99 240 ms, 4.7 ms with 128 KiB: `make bench`, hostile).
WRITE_HIGH_WATER = 8 * 1024
READ_STEP = 8 * 1024
# While the client keeps up (nothing left unsent in user space), the step doubles up to
# this: fewer turns of the loop per byte. A stalled client holds at most one such step.
READ_STEP_MAX = 64 * 1024
# ... and up to this once it has earned the larger send buffer (a client that never read
# cannot: stalled ones stay at READ_STEP_MAX), for the streams of JSON events (`pace`'s
# `fast_step`). Each turn of the loop costs ~20 us of Python and syscalls, a third of the
# daemon's CPU at 64 KiB; 128 KiB turns cut the CPU per byte of a JSON stream by ~25%, while
# larger ones cost more (256 KiB), and /logs/stream's prefixed lines ran a third slower at 128.
READ_STEP_FAST = 128 * 1024
SOCKET_SEND_BUFFER = 128 * 1024
SOCKET_SEND_BUFFER_FAST = 512 * 1024
SEND_BUFFER_EARNED = 1024 * 1024  # more than a client that does not read can take (buffers)
# Memory given back to the system once open streams fall to half their peak (of at least this many).
TRIM_MIN_PEAK = 8
TRIM_DELAY = 1.0


def valid_utf8(data: bytes) -> bytes:
    """`data`, with invalid UTF-8 sequences replaced by U+FFFD."""
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")


def json_string(data: bytes) -> bytes:
    """`data` (UTF-8; an invalid byte shows as U+FFFD) as the body of a JSON string
    literal, without the quotes."""
    return json_framed(b"", data, b"")


def _msgspec_escape(head: bytes, data: bytes | memoryview, tail: bytes, ascii_only: bool = False) -> bytes | None:
    """What _native.json_escape does, for an older build of _native without it (an invalid
    sequence shows as U+FFFD here already: `ascii_only` need not ask for a check)."""
    return head + msgspec.json.encode(str(data, "utf-8", "replace"))[1:-1] + tail


# One pass over the bytes in C: 3-5x msgspec's escaper (byte by byte, after a decode to str),
# which was a quarter of the daemon's CPU on a stream of short lines.
_escape: Callable[..., bytes | None] = getattr(_native, "json_escape", _msgspec_escape)


def json_framed(head: bytes, data: bytes, tail: bytes, length: int = -1) -> bytes:
    """`head`, the first `length` bytes of `data` (all by default) as the body of a JSON
    string literal, then `tail`, in one allocation (an NDJSON event: no slices nor joins).
    `data` is UTF-8; an invalid sequence shows as U+FFFD, as bytes.decode("utf-8", "replace")
    gives it."""
    part: bytes | memoryview = data if length < 0 or length == len(data) else memoryview(data)[:length]
    out = _escape(head, part, tail, True)  # None: not all ASCII (seen while escaping, at no cost)
    if out is None:
        try:
            str(part, "utf-8")
        except UnicodeDecodeError:
            part = str(part, "utf-8", "replace").encode()
        out = _escape(head, part, tail)
    assert out is not None
    return out


def prefix_lines(data: bytes, prefix: bytes) -> bytes:
    """Complete lines (each ending with a newline) with `prefix` before each one."""
    if not data:
        return b""
    return prefix + valid_utf8(data)[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def next_step(step: int, behind: bool, fast: bool, fast_step: int = READ_STEP_FAST) -> int:
    """The read step after `step`: back to READ_STEP as soon as the client is behind (a stalled
    client is seen before its step has grown), else doubled up to READ_STEP_MAX, or up to
    `fast_step` for a client that has earned the larger send buffer."""
    if behind:
        return READ_STEP
    return min(step * 2, fast_step if fast else READ_STEP_MAX)


def pace(request: web.Request, fast_step: int = READ_STEP_MAX) -> Callable[[int], int]:
    """The next read step of a stream to this client (`next_step`), given the step just taken.
    The client is behind when output still waits in user space (its socket is full), or the
    kernel holds more than twice `step` bytes it has not taken (its receive window is
    closing). A client that keeps up long enough gets the larger send buffer (see above)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    fd = sock.fileno() if sock is not None else -1
    queued = bytearray(4)
    taken = 0  # bytes handed on since the client was last behind
    fast = False

    def resize(size: int) -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def behind(step: int) -> bool:
        if transport is None or transport.is_closing() or transport.get_write_buffer_size() > 0:
            return True
        if fd < 0:
            return False
        try:
            fcntl.ioctl(fd, termios.TIOCOUTQ, queued)  # SIOCOUTQ: bytes sent but not acknowledged
        except OSError:
            return False
        return int.from_bytes(queued, sys.byteorder) > 2 * step

    def check(step: int) -> int:
        nonlocal taken, fast
        late = behind(step)
        if late:
            taken = 0
            if fast:
                fast = False
                resize(SOCKET_SEND_BUFFER)
        else:
            taken += step
            if not fast and taken >= SEND_BUFFER_EARNED:
                fast = True
                resize(SOCKET_SEND_BUFFER_FAST)
        return next_step(step, late, fast, fast_step)

    return check


def disconnected(request: web.Request, interval: float = 1.0) -> asyncio.Future[None]:
    """A future resolved once the client's connection is gone (checked every `interval`).

    aiohttp does not cancel a handler whose client left (and must not: a process must
    never die with its requester), so long streams watch for it to release what they
    hold. Cancel the future when the stream ends.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def check() -> None:
        if future.done():
            return
        transport = request.transport
        if transport is None or transport.is_closing():
            future.set_result(None)
        else:
            loop.call_later(interval, check)

    loop.call_later(interval, check)
    return future


class _Load:
    """How many long streams are open; when many have closed, free memory goes back to
    the system (a burst of slow clients must not leave the daemon's RSS up for good)."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self._trim: asyncio.TimerHandle | None = None

    def opened(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def closed(self) -> None:
        self.active -= 1
        if self.peak >= TRIM_MIN_PEAK and self.active <= self.peak // 2:
            self.peak = self.active
            if self._trim is None:
                self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, self._release)

    def release_soon(self) -> None:
        """Give memory back once a burst is over (TRIM_DELAY after the last call)."""
        if self._trim is not None:
            self._trim.cancel()
        self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, self._release)

    def _release(self) -> None:
        self._trim = None
        # Connections that ended abruptly leave cycles (tens of thousands of objects after a
        # burst) that only a full collection frees; start-up objects are frozen (app.serve),
        # so this costs ~10 ms, once per burst.
        gc.collect()
        release_free_memory()


LOAD = _Load()


@contextlib.contextmanager
def bounded(request: web.Request) -> Iterator[None]:
    """Around a long response: a small transport write buffer (the writer waits past it), and the
    memory it used given back once enough of these have ended."""
    transport = request.transport
    if transport is not None:
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # what a stalled client makes the kernel hold (and us copy) is bounded too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
    LOAD.opened()
    try:
        yield
    finally:
        LOAD.closed()


def forget(error: BaseException) -> None:
    """Drop the tracebacks of a client's disconnection: aiohttp's drain waiter, its
    exception and the frames of the traceback form a cycle, which would hold each
    stream's buffers until a full garbage collection (tens of ms with the loop stopped)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


@contextlib.asynccontextmanager
async def serving(request: web.Request) -> AsyncIterator[asyncio.Future[None]]:
    """The frame of every long stream (log streams, the NDJSON exec stream, watches):
    bounded buffers (`bounded`), a future resolved once the client is gone, and a client
    that left (or a cancelled handler) ending the stream quietly: what it followed goes on."""
    gone = disconnected(request)
    try:
        with bounded(request):
            yield gone
    except (ConnectionError, asyncio.CancelledError) as e:
        forget(e)
    finally:
        gone.cancel()
