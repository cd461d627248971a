"""Watching a directory for changes: one inotify instance shared by every watch.

Every watch of the daemon (on one event loop) shares a single inotify file descriptor,
read on the event loop: the loop's dispatcher (linux/inotify.py), which also wakes the
followers of process output. An idle watch costs nothing (no thread, no timer), and the
number of watches is not capped by the kernel's inotify instances per user (128 by
default; watchfiles, which the design first named, gives each watcher its own instance
and cannot add paths to a running one, so it fails at the 129th watch). The inotify watches of a directory watched by several clients are shared
too (the kernel gives one watch descriptor per directory and instance): each is
removed once no client needs it.

Events are batched per watch (a batch is what one read of the inotify fd brought: the
changes the kernel queued while the loop was busy, cut at once, so an event reaches
its client about a millisecond after the change), then turned into the API's events:

- created or moved in -> CREATE, modified or attributes changed -> WRITE, deleted or
  moved out -> REMOVE (a rename is a REMOVE and a CREATE; a mode change is a WRITE);
- a path changed twice in one batch is resolved by what exists now (delete + create
  of the same name: REMOVE then CREATE);
- in a recursive watch, a new directory is watched as soon as its event is read,
  then listed, and a CREATE is sent for everything already inside it: entries made
  before its inotify watch existed are never missed (duplicates are possible and
  harmless). Symbolic links to directories are not followed.

Arming (a recursive watch adds one inotify watch per directory) runs in a worker
thread; `start` returns once every directory is watched.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from ..errors import Internal, Invalid, NotFound, Unprocessable, os_error_text
from ..linux import inotify
from ..linux.inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
)

log = logging.getLogger("sandbox_api.watch")

_ADDED, _MODIFIED, _DELETED = 1, 2, 3
_OPS = {_ADDED: "CREATE", _MODIFIED: "WRITE", _DELETED: "REMOVE"}

_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)


@dataclass(frozen=True)
class Event:
    op: str
    path: str  # absolute

    def to_dict(self) -> dict[str, object]:
        parent, _, name = self.path.rpartition("/")
        return {"op": self.op, "name": name, "path": parent, "error": None}


class _Hub:
    """The watches of one event loop, as one subscriber of the loop's inotify dispatcher
    (linux/inotify.py): which watch wants which directory descriptor.

    Descriptors are added from worker threads (arming) and from the loop, and read on
    the loop: the map is guarded by a lock held only around single calls.
    """

    _by_loop: ClassVar[dict[asyncio.AbstractEventLoop, _Hub]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.users: dict[int, dict[Watch, str]] = {}  # wd -> {watch: the directory's path for it}
        self.watches = 0
        self.dispatcher: inotify.Dispatcher | None = inotify.Dispatcher.acquire(self, loop)

    @classmethod
    def acquire(cls, loop: asyncio.AbstractEventLoop) -> _Hub:
        hub = cls._by_loop.get(loop)
        if hub is None:
            hub = cls._by_loop[loop] = cls(loop)
        hub.watches += 1
        return hub

    def release(self) -> None:
        """One watch fewer; the last one lets the dispatcher go."""
        self.watches -= 1
        if self.watches == 0 and self._by_loop.get(self.loop) is self:
            del self._by_loop[self.loop]
            with self.lock:
                self.users.clear()
                dispatcher, self.dispatcher = self.dispatcher, None
            if dispatcher is not None:
                dispatcher.release(self)

    def add(self, watch: Watch, path: str, follow: bool = False) -> None:
        """Watch directory `path` for `watch` (OSError if the kernel refuses)."""
        mask = _MASK if follow else _MASK | IN_DONT_FOLLOW
        with self.lock:
            if watch.closed or self.dispatcher is None:
                return
            wd = self.dispatcher.add(self, path, mask)
            self.users.setdefault(wd, {})[watch] = path
            watch.wds.add(wd)

    def forget(self, watch: Watch) -> None:
        """Remove every descriptor of `watch` that no other watch uses."""
        with self.lock:
            for wd in watch.wds:
                self._leave(wd, watch)
            watch.wds.clear()

    def forget_below(self, watch: Watch, top: str) -> None:
        """Stop watching `top` and what is below it for `watch` (it was moved away)."""
        prefix = top + "/"
        with self.lock:
            for wd in list(watch.wds):
                users = self.users.get(wd)
                path = users.get(watch) if users else None
                if users is None or path is None or (path != top and not path.startswith(prefix)):
                    continue
                self._leave(wd, watch)
                watch.wds.discard(wd)

    def _leave(self, wd: int, watch: Watch) -> None:
        users = self.users.get(wd)
        if users is None:
            return
        users.pop(watch, None)
        if not users:
            del self.users[wd]
            if self.dispatcher is not None:
                self.dispatcher.remove(self, wd)

    def inotify_event(self, wd: int, mask: int, name: bytes) -> None:
        """Hand an event to the watches of its directory (on the loop)."""
        with self.lock:
            users = self.users.get(wd)
            targets = list(users.items()) if users else []
            if mask & IN_IGNORED and users is not None:  # the directory is gone
                del self.users[wd]
                for watch, _ in targets:
                    watch.wds.discard(wd)
        for watch, directory in targets:
            watch.raw(mask, directory, os.fsdecode(name))

    def inotify_batch_done(self) -> None:
        pass  # each watch batches its own events (Watch.raw)

    def inotify_overflow(self) -> None:
        log.warning("inotify queue overflow: some changes were not reported")


class Watch:
    def __init__(self, root: str, recursive: bool, ignore: Iterable[str] = ()) -> None:
        self.root = root
        self.recursive = recursive
        self.ignore = tuple(i for i in ignore if i)
        self.closed = False
        self.wds: set[int] = set()  # guarded by the hub's lock
        self._hub: _Hub | None = None
        self._queue: asyncio.Queue[list[tuple[int, str]]] = asyncio.Queue()
        self._pending: list[tuple[int, str]] = []
        self._flush: asyncio.Handle | None = None

    async def start(self) -> None:
        """Check the root and arm the watch: no change after this returns can be missed."""
        try:
            is_dir = os.path.isdir(self.root)
        except OSError as e:
            raise Unprocessable(str(e)) from None
        if not is_dir:
            if not os.path.exists(self.root):
                raise NotFound(f"stat {self.root}: no such file or directory")
            raise Invalid("path is not a directory")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise Unprocessable(f"open {self.root}: permission denied")
        try:
            self._hub = _Hub.acquire(asyncio.get_running_loop())
            await asyncio.to_thread(self._arm)
        except OSError as e:
            self.close()
            raise Internal(f"cannot watch {self.root}: {os_error_text(e)}") from None
        except BaseException:
            self.close()
            raise

    def _arm(self) -> None:
        """In a worker thread: the root, then (recursive) every directory below it."""
        hub = self._hub
        assert hub is not None
        hub.add(self, self.root, follow=True)
        if self.recursive:
            self._add_below(self.root)

    def _add_below(self, top: str) -> None:
        """Watch the directories below `top` (best effort: some may be unreadable or gone)."""
        hub = self._hub
        for dirpath, dirnames, _ in os.walk(top):
            if self.closed or hub is None:
                return
            for name in dirnames:
                try:
                    hub.add(self, os.path.join(dirpath, name))
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        log.warning("inotify watch limit reached: %s is not watched", e.filename)
                        return

    def raw(self, mask: int, directory: str, name: str) -> None:
        """One inotify event for this watch (on the event loop)."""
        if self.closed:
            return
        path = os.path.join(directory, name) if name else directory
        if mask & IN_DELETE_SELF:
            if name or directory != self.root:
                return  # a subdirectory: its parent reports it
            change = _DELETED
        elif mask & (IN_CREATE | IN_MOVED_TO):
            change = _ADDED
            if self.recursive and mask & IN_ISDIR and self._hub is not None:
                try:
                    self._hub.add(self, path)  # at once: what it holds is listed in _events
                except OSError:
                    pass
        elif mask & (IN_DELETE | IN_MOVED_FROM):
            change = _DELETED
            if mask & IN_MOVED_FROM and mask & IN_ISDIR and self.recursive and self._hub is not None:
                self._hub.forget_below(self, path)  # moved within the tree: it comes back as new
        elif mask & (IN_MODIFY | IN_ATTRIB):
            change = _MODIFIED
        else:
            return
        self._pending.append((change, path))
        if self._flush is None:  # cut once the events of this read are all in
            self._flush = asyncio.get_running_loop().call_soon(self._deliver)

    def _deliver(self) -> None:
        self._flush = None
        batch, self._pending = self._pending, []
        if batch:
            self._queue.put_nowait(batch)

    async def next_events(self) -> list[Event]:
        """The next batch of events (may be empty when all were ignored)."""
        return await self._events(await self._queue.get())

    async def _events(self, batch: list[tuple[int, str]]) -> list[Event]:
        by_path: dict[str, set[int]] = {}
        for change, path in batch:
            by_path.setdefault(path, set()).add(change)
        events: list[Event] = []
        new_dirs: list[str] = []
        for path in sorted(by_path):
            changes = by_path[path]
            exists = os.path.lexists(path)
            if _DELETED in changes and _ADDED in changes:
                ordered = [_DELETED, _ADDED] if exists else [_ADDED, _DELETED]
            elif _DELETED in changes:
                ordered = [_DELETED]
            else:
                ordered = sorted(changes)
            for change in ordered:
                events.append(Event(_OPS[change], path))
            if self.recursive and _ADDED in changes and exists and os.path.isdir(path) and not os.path.islink(path):
                new_dirs.append(path)
        if new_dirs:
            events += await asyncio.to_thread(self._existing_entries, new_dirs)
        return [e for e in events if not any(pattern in e.path for pattern in self.ignore)]

    def _existing_entries(self, directories: list[str]) -> list[Event]:
        """A CREATE for everything inside new directories (and theirs, recursively);
        their subdirectories are watched before being listed."""
        events: list[Event] = []
        hub = self._hub
        for directory in directories:
            for dirpath, dirnames, filenames in os.walk(directory):
                if self.closed or hub is None:
                    return events
                for name in sorted(dirnames):
                    path = os.path.join(dirpath, name)
                    try:
                        hub.add(self, path)
                    except OSError:
                        pass
                    events.append(Event("CREATE", path))
                for name in sorted(filenames):
                    events.append(Event("CREATE", os.path.join(dirpath, name)))
        return events

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._hub is not None:
            self._hub.forget(self)
            self._hub.release()
            self._hub = None
