"""A minimal inotify instance on the event loop, used to follow growing log files.

A log tail must wake within a millisecond and see every write in order; it needs only
a file-modified wake-up, a few lines of ctypes. (The watch API has its own shared
instance, with batching: watch/watcher.py.)
When inotify is unavailable, `Inotify.open()` returns None and callers poll instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from collections.abc import Callable

from .syscalls import libc

IN_MODIFY = 0x00000002
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")

Handler = Callable[[], None]


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
        c = libc()
        if c is None:
            return None
        try:
            fd = c.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except AttributeError:
            return None
        if fd < 0:
            return None
        return cls(fd, asyncio.get_running_loop(), on_overflow)

    def add(self, path: str, handler: Handler, mask: int = IN_MODIFY) -> int | None:
        c = libc()
        assert c is not None
        wd = c.inotify_add_watch(self._fd, os.fsencode(path), ctypes.c_uint32(mask))
        if wd < 0:
            return None
        self._handlers[wd] = handler
        return wd

    def remove(self, wd: int) -> None:
        if self._handlers.pop(wd, None) is not None:
            c = libc()
            assert c is not None
            c.inotify_rm_watch(self._fd, wd)

    def pump(self) -> None:
        """Read the queued events and run each watch's handler once, in the order of
        its first event.

        A handler looks at its file as it is now, so one call covers every event of
        the batch: a flood of output costs one call per file, not one per write. One
        read per call (up to 4,096 events): if more are queued, the event loop calls
        again after the other work that is ready, so that busy processes never hold
        the loop (and with it every request and stream) for long.
        """
        try:
            data = os.read(self._fd, 64 * 1024)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return
            raise
        fired: dict[int, None] = {}  # ordered: first event first
        overflow = False
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
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
