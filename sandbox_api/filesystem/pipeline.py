"""Feeding a blocking writer (a file, a part) from the event loop without blocking it.

Bytes are batched to about 1 MiB; a worker thread writes one batch while the next one
arrives, so the network and the disk work at the same time and at most two batches are
held in memory, whatever the size of the body.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ..errors import PayloadTooLarge


class Sink(Protocol):
    def write(self, data: bytes | bytearray) -> None: ...


class ThreadedWriter:
    BATCH = 1024 * 1024

    def __init__(self, sink: Sink, limit: int = 0) -> None:
        self.sink = sink
        self.limit = limit  # bytes; 0 = none
        self.received = 0
        self._batch = bytearray()
        self._pending: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.limit and self.received > self.limit:
            raise PayloadTooLarge(f"request body too large: the limit is {self.limit} bytes")
        self._batch += data
        if len(self._batch) >= self.BATCH:
            await self._submit()

    async def _submit(self) -> None:
        await self._wait()
        if self._batch:
            batch, self._batch = self._batch, bytearray()
            self._pending = asyncio.get_running_loop().run_in_executor(None, self.sink.write, batch)

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
        self._batch = bytearray()
        try:
            await self._wait()
        except (OSError, PayloadTooLarge):
            pass
