"""inotify on the event loop: the kernel calls, and the one dispatcher of each event loop.

One inotify instance per loop serves both of its users: `Inotify`, which follows growing
log files (a file-modified wake-up per file, within a millisecond, in order), and the
watch API's hub (watch/watcher.py: directory events with names). The kernel's limit of
inotify instances per user (128 by default) is then never reached by the daemon.

Two users may watch the same inode: masks are merged (IN_MASK_ADD) and each subscriber
gets only the events of its own mask; a descriptor is removed once no subscriber keeps
it. When inotify is unavailable, `Inotify.open()` returns None and callers poll instead.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar, Protocol

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
IN_MASK_ADD = 0x20000000
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


class Subscriber(Protocol):
    def inotify_event(self, wd: int, mask: int, name: bytes) -> None:
        """One event of a descriptor this subscriber holds (IN_IGNORED: the descriptor is gone)."""

    def inotify_batch_done(self) -> None:
        """The events of one read were all handed over."""

    def inotify_overflow(self) -> None:
        """The kernel queue overflowed: events were lost."""


class Dispatcher:
    """The inotify instance of one event loop and who holds which descriptor.

    Descriptors are added from worker threads (a watch arming) and from the loop, and read
    on the loop: the map is guarded by a lock held only around single calls.
    """

    _by_loop: ClassVar[dict[asyncio.AbstractEventLoop, Dispatcher]] = {}

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.fd = fd
        self.loop = loop
        self.lock = threading.Lock()
        self.holders: dict[int, dict[Subscriber, int]] = {}  # wd -> {subscriber: its mask}
        self.subscribers: dict[Subscriber, int] = {}  # subscriber -> how many acquired it
        loop.add_reader(fd, self.pump)

    @classmethod
    def acquire(cls, subscriber: Subscriber, loop: asyncio.AbstractEventLoop) -> Dispatcher:
        """The loop's dispatcher, made on first use (OSError without inotify)."""
        dispatcher = cls._by_loop.get(loop)
        if dispatcher is None:
            dispatcher = cls._by_loop[loop] = cls(init(), loop)
        dispatcher.subscribers[subscriber] = dispatcher.subscribers.get(subscriber, 0) + 1
        return dispatcher

    def release(self, subscriber: Subscriber) -> None:
        """`subscriber` is done; the last one closes the instance."""
        count = self.subscribers.get(subscriber, 0) - 1
        if count > 0:
            self.subscribers[subscriber] = count
            return
        self.subscribers.pop(subscriber, None)
        with self.lock:
            for wd in [wd for wd, holders in self.holders.items() if subscriber in holders]:
                self._drop(wd, subscriber)
        if not self.subscribers and self._by_loop.get(self.loop) is self:
            del self._by_loop[self.loop]
            self.loop.remove_reader(self.fd)
            with self.lock:
                fd, self.fd = self.fd, -1
                self.holders.clear()
            os.close(fd)

    def add(self, subscriber: Subscriber, path: str, mask: int) -> int:
        """The descriptor of `path` for `subscriber` (OSError if the kernel refuses)."""
        with self.lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, "inotify is closed", path)
            wd = add_watch(self.fd, path, mask | IN_MASK_ADD)
            holders = self.holders.setdefault(wd, {})
            holders[subscriber] = holders.get(subscriber, 0) | mask
            return wd

    def remove(self, subscriber: Subscriber, wd: int) -> None:
        with self.lock:
            self._drop(wd, subscriber)

    def _drop(self, wd: int, subscriber: Subscriber) -> None:
        holders = self.holders.get(wd)
        if holders is None or holders.pop(subscriber, None) is None:
            return
        if not holders:
            del self.holders[wd]
            if self.fd >= 0:
                rm_watch(self.fd, wd)

    def pump(self) -> None:
        """Hand each queued event to the subscribers whose mask it matches. One read per call:
        if more is queued, the loop calls again after the other work that is ready, so that
        busy processes never hold the loop (and every request and stream) for long."""
        if self.fd < 0 or (data := read_events(self.fd, 256 * 1024)) is None:
            return
        touched: dict[Subscriber, None] = {}
        for wd, mask, name in events(data):
            if mask & IN_Q_OVERFLOW:
                for subscriber in list(self.subscribers):
                    subscriber.inotify_overflow()
                continue
            with self.lock:
                holders = self.holders.get(wd)
                targets = list(holders.items()) if holders else []
                if mask & IN_IGNORED and holders is not None:  # the kernel dropped it (file gone)
                    del self.holders[wd]
            for subscriber, wanted in targets:
                if mask & (wanted | IN_IGNORED):
                    subscriber.inotify_event(wd, mask, name)
                    touched[subscriber] = None
        for subscriber in touched:
            subscriber.inotify_batch_done()


class Inotify:
    """Follows files: each watch calls its handler when its file is modified, once per batch
    of events (a handler looks at its file as it is now, so a flood of output costs one call
    per file, not one per write), in the order of the first events.

    `on_overflow` runs when the kernel queue overflowed and events were lost, so the owner
    can rescan everything.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_overflow: Handler) -> None:
        self._handlers: dict[int, Handler] = {}
        self._fired: dict[int, None] = {}  # ordered: first event first
        self._on_overflow = on_overflow
        self._dispatcher: Dispatcher | None = Dispatcher.acquire(self, loop)

    @classmethod
    def open(cls, on_overflow: Handler) -> Inotify | None:
        try:
            return cls(asyncio.get_running_loop(), on_overflow)
        except OSError:
            return None

    def add(self, path: str, handler: Handler, mask: int = IN_MODIFY) -> int | None:
        if self._dispatcher is None:
            return None
        try:
            wd = self._dispatcher.add(self, path, mask)
        except OSError:
            return None
        self._handlers[wd] = handler
        return wd

    def remove(self, wd: int) -> None:
        if self._handlers.pop(wd, None) is not None and self._dispatcher is not None:
            self._dispatcher.remove(self, wd)

    def pump(self) -> None:
        """Take the events queued now (output written before a process's exit comes first)."""
        if self._dispatcher is not None:
            self._dispatcher.pump()

    def inotify_event(self, wd: int, mask: int, name: bytes) -> None:
        if mask & IN_IGNORED:
            self._handlers.pop(wd, None)
            self._fired.pop(wd, None)
        else:
            self._fired[wd] = None

    def inotify_batch_done(self) -> None:
        fired, self._fired = self._fired, {}
        for wd in fired:
            handler = self._handlers.get(wd)
            if handler is not None:
                handler()

    def inotify_overflow(self) -> None:
        self._on_overflow()

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.release(self)
            self._dispatcher = None
            self._handlers.clear()
