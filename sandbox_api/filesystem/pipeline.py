"""Feeding a blocking writer (a file, a part) from the event loop without blocking it.

Bytes are batched to about 1 MiB; a worker thread writes one batch while the next one
arrives, so the network and the disk work at the same time and at most two batches are
held in memory, whatever the size of the body.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from ..errors import PayloadTooLarge


class Sink(Protocol):
    def write_all(self, pieces: list[bytes]) -> None: ...


class ThreadedWriter:
    BATCH = 1024 * 1024

    def __init__(self, sink: Sink, limit: int = 0) -> None:
        self.sink = sink
        self.limit = limit  # bytes; 0 = none
        self.received = 0
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._pending: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.limit and self.received > self.limit:
            raise PayloadTooLarge(f"request body too large: the limit is {self.limit} bytes")
        self._batch.append(data)  # no copy: the worker writes the pieces with writev
        self._batch_size += len(data)
        if self._batch_size >= self.BATCH:
            await self._submit()

    async def _submit(self) -> None:
        await self._wait()
        if self._batch:
            batch, self._batch, self._batch_size = self._batch, [], 0
            self._pending = asyncio.get_running_loop().run_in_executor(None, self.sink.write_all, batch)

    async def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def flush(self) -> None:
        """Everything written so far is in the sink (raises the sink's errors)."""
        await self._submit()
        await self._wait()

    async def discard(self) -> None:
        """Stop: wait for the batch in flight, ignore its outcome."""
        self._batch, self._batch_size = [], 0
        try:
            await self._wait()
        except (OSError, PayloadTooLarge):
            pass


def write_all(fd: int, pieces: list[bytes]) -> int:
    """Write every piece to `fd` (writev, resuming after short writes); the byte count."""
    total = sum(len(p) for p in pieces)
    views = [memoryview(p) for p in pieces if len(p)]  # writev of an empty piece writes 0: it would never go
    while views:
        written = os.writev(fd, views[:1024])
        while written:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0
    return total
