"""Watching a directory for changes, with watchfiles (the Rust `notify` crate).

Each watch owns a `RustNotify` (armed, i.e. its inotify watches in place, when the
constructor returns) and a thread of its own that waits on it: the shared executor
would cap the number of simultaneous watches at its size. The thread hands batches to
the event loop, which turns them into events:

- added -> CREATE, modified -> WRITE, deleted -> REMOVE (a rename is a REMOVE and a
  CREATE; a mode change is a WRITE);
- a path changed twice in one batch is resolved by what exists now (delete + create
  of the same name: REMOVE then CREATE);
- in a recursive watch, a new directory is listed at once and a CREATE is sent for
  everything already inside it: entries made before its inotify watch existed are
  never missed (duplicates are possible and harmless).

Latency: `notify` forwards a change within `STEP_MS` of the last one in a burst.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import Internal, Invalid, NotFound, Unprocessable

log = logging.getLogger("sandbox_api.watch")

DEBOUNCE_MS = 50  # a batch is cut after this long, however busy the tree
STEP_MS = 5  # ... or after this long without a new change
_ADDED, _MODIFIED, _DELETED = 1, 2, 3
_OPS = {_ADDED: "CREATE", _MODIFIED: "WRITE", _DELETED: "REMOVE"}


@dataclass(frozen=True)
class Event:
    op: str
    path: str  # absolute

    def to_dict(self) -> dict[str, object]:
        parent, _, name = self.path.rpartition("/")
        return {"op": self.op, "name": name, "path": parent, "error": None}


class Watch:
    def __init__(self, root: str, recursive: bool, ignore: Iterable[str] = ()) -> None:
        self.root = root
        self.recursive = recursive
        self.ignore = tuple(i for i in ignore if i)
        self._notify = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue: asyncio.Queue[list[tuple[int, str]] | BaseException] = asyncio.Queue()

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
        from watchfiles._rust_notify import (
            RustNotify,  # a heavy import: only when first needed
        )

        try:
            self._notify = await asyncio.to_thread(RustNotify, [self.root], False, False, 300, self.recursive, True)
        except (OSError, RuntimeError) as e:
            raise Internal(f"cannot watch {self.root}: {e}") from None
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._wait_loop, args=(loop,), name="watch", daemon=True)
        self._thread.start()

    def _wait_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        notify = self._notify
        assert notify is not None
        try:
            while not self._stop.is_set():
                result = notify.watch(DEBOUNCE_MS, STEP_MS, 0, self._stop)
                if isinstance(result, set):
                    loop.call_soon_threadsafe(self._queue.put_nowait, list(result))
                elif result == "stop":
                    break
        except BaseException as e:  # hand any failure to the stream, which ends
            if not self._stop.is_set():
                try:
                    loop.call_soon_threadsafe(self._queue.put_nowait, e)
                except RuntimeError:
                    pass
        finally:
            notify.close()

    async def next_events(self) -> list[Event]:
        """The next batch of events (may be empty when all were ignored)."""
        batch = await self._queue.get()
        if isinstance(batch, BaseException):
            raise Internal(f"watch of {self.root} failed: {batch}")
        return await self._events(batch)

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
            events += await asyncio.to_thread(_existing_entries, new_dirs)
        return [e for e in events if not any(pattern in e.path for pattern in self.ignore)]

    def close(self) -> None:
        self._stop.set()


def _existing_entries(directories: list[str]) -> list[Event]:
    """A CREATE for everything inside new directories (and theirs, recursively)."""
    events = []
    for directory in directories:
        for dirpath, dirnames, filenames in os.walk(directory):
            for name in sorted(dirnames) + sorted(filenames):
                events.append(Event("CREATE", os.path.join(dirpath, name)))
    return events
