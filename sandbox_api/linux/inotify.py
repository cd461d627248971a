"""inotify on the event loop: the kernel calls (init, add and remove a watch, decode
events) used by both of its users, and `Inotify`, which follows growing log files.

A log tail must wake within a millisecond and see every write in order; it needs only
a file-modified wake-up per file. (The watch API keeps its own shared instance, with
names and batching: watch/watcher.py.)
When inotify is unavailable, `Inotify.open()` returns None and callers poll instead.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import Callable, Iterator

from . import _native

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")

Handler = Callable[[], None]


def init() -> int:
    """A new non-blocking, close-on-exec inotify fd; OSError when there is none."""
    fd: int = _native.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    return fd


def add_watch(fd: int, path: str, mask: int) -> int:
    """The watch descriptor of `path` on `fd` (the same one if already watched)."""
    wd: int = _native.inotify_add_watch(fd, path, mask)
    return wd


def rm_watch(fd: int, wd: int) -> None:
    try:
        _native.inotify_rm_watch(fd, wd)
    except OSError:
        pass  # already gone (the kernel drops a watch whose file was deleted)


def read_events(fd: int, size: int) -> bytes | None:
    """Up to `size` bytes of queued events; None when nothing is queued."""
    try:
        return os.read(fd, size) or None
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return None
        raise


def events(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(wd, mask, name) of each event in `data`, as read from an inotify fd."""
    offset = 0
    while offset < len(data):
        wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        start = offset + _EVENT.size
        offset = start + length
        yield wd, mask, data[start:offset].rstrip(b"\0")


class Inotify:
    """One inotify fd; each watch calls its handler when its file is modified.

    `on_overflow` runs when the kernel queue overflowed and events were lost, so the
    owner can rescan everything.
    """

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, on_overflow: Handler) -> None:
        self._fd = fd
        self._loop = loop
        self._handlers: dict[int, Handler] = {}
        self._on_overflow = on_overflow
        loop.add_reader(fd, self.pump)

    @classmethod
    def open(cls, on_overflow: Handler) -> Inotify | None:
        try:
            return cls(init(), asyncio.get_running_loop(), on_overflow)
        except OSError:
            return None

    def add(self, path: str, handler: Handler, mask: int = IN_MODIFY) -> int | None:
        try:
            wd = add_watch(self._fd, path, mask)
        except OSError:
            return None
        self._handlers[wd] = handler
        return wd

    def remove(self, wd: int) -> None:
        if self._handlers.pop(wd, None) is not None:
            rm_watch(self._fd, wd)

    def pump(self) -> None:
        """Read the queued events and run each watch's handler once, in the order of
        its first event.

        A handler looks at its file as it is now, so one call covers every event of
        the batch: a flood of output costs one call per file, not one per write. One
        read per call (up to 4,096 events): if more are queued, the event loop calls
        again after the other work that is ready, so that busy processes never hold
        the loop (and with it every request and stream) for long.
        """
        data = read_events(self._fd, 64 * 1024)
        if data is None:
            return
        fired: dict[int, None] = {}  # ordered: first event first
        overflow = False
        for wd, mask, _name in events(data):
            if mask & IN_Q_OVERFLOW:
                overflow = True
            elif mask & IN_IGNORED:
                self._handlers.pop(wd, None)
                fired.pop(wd, None)
            else:
                fired[wd] = None
        for wd in fired:
            handler = self._handlers.get(wd)
            if handler is not None:
                handler()
        if overflow:
            self._on_overflow()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._handlers.clear()
