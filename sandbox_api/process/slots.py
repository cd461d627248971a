"""Keys whose files already exist, so that starting a process creates no file.

Creating a file costs about 0.4 ms on some disks (ext4 mounted with `discard`, as
here), and each process needs four (its record, stdout, stderr, index): that alone
would double the latency of a quick exec. The pool creates them ahead of demand, in
a thread; opening an existing file costs a few microseconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("sandbox_api.slots")

POOL_SIZE = 64


def new_key() -> str:
    """Unique and sortable by creation time."""
    return f"{time.time_ns():x}-{secrets.token_hex(3)}"


class SlotPool:
    def __init__(self, paths_for: Callable[[str], list[str]], size: int = POOL_SIZE) -> None:
        self._paths_for = paths_for
        self._size = size
        self._free: deque[str] = deque()
        self._refilling: asyncio.Task[None] | None = None

    def add(self, key: str) -> None:
        """A key whose files exist and are empty (e.g. left over by a previous run)."""
        self._free.append(key)

    def take(self) -> str:
        """A key with its files created (synchronously if the pool ran dry)."""
        key = self._free.popleft() if self._free else None
        if key is None:
            key = new_key()
            self._create(key)
        if len(self._free) < self._size * 3 // 4:
            self.refill()
        return key

    def refill(self) -> None:
        """Top the pool up in the background (nothing waits for it: take() copes with a dry pool)."""
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.get_running_loop().create_task(self.fill())

    async def fill(self) -> None:
        missing = self._size - len(self._free)
        if missing <= 0:
            return
        try:
            await asyncio.to_thread(self._create_many, missing)
        except OSError as e:
            log.warning("could not pre-create process files: %s", e)

    def _create_many(self, count: int) -> None:
        for _ in range(count):
            key = new_key()
            self._create(key)
            # Usable at once (deque appends are atomic), not when the whole batch is made:
            # a burst of execs would empty the pool meanwhile and create files inline.
            self._free.append(key)

    def _create(self, key: str) -> None:
        for path in self._paths_for(key):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:  # the directory was removed under us: make it again
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.close(fd)

    async def close(self) -> None:
        if self._refilling is not None:
            self._refilling.cancel()
            try:
                await self._refilling
            except (asyncio.CancelledError, OSError):
                pass
