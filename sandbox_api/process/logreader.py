"""Reading a process's output (see logstore.py for how it is kept): `LogReader` replays
it in order from the first line or from offsets, and `follow` streams it as it grows,
at the consumer's pace."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping

from ..linux.syscalls import data_start
from .logstore import _READ_STEP, MAX_LINE_PIECE, STDERR, STDOUT, Chunk, OutputLog, _char_boundary


class LogReader:
    """Replays a process's output from its first line (or from `start`, an offset per
    stream), then follows what comes next."""

    def __init__(self, log: OutputLog, start: Mapping[int, int] | None = None) -> None:
        self._log = log
        self._record = 0  # absolute record number
        self._consumed = {STDOUT: 0, STDERR: 0, **(start or {})}
        self._fds: dict[int, int] = {}

    def __enter__(self) -> LogReader:
        for stream, path in self._log.paths.items():
            try:
                self._fds[stream] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def read(self, budget: int = _READ_STEP) -> list[Chunk]:
        """Up to about `budget` bytes of new lines, in order; [] when there is none."""
        chunks: list[Chunk] = []
        log = self._log
        first = max(self._record - log.base, 0)
        for i in range(first, len(log.records)):
            stream, end = log.records[i]
            self._record = log.base + i
            while budget > 0 and self._consumed[stream] < end:
                chunk = self._read_range(stream, end, budget)
                if chunk is None:
                    break
                budget -= len(chunk.data)
                chunks.append(chunk)
            if budget <= 0:
                break
        return chunks

    def _read_range(self, stream: int, end: int, budget: int) -> Chunk | None:
        fd = self._fds.get(stream)
        if fd is None:
            self._consumed[stream] = end
            return None
        start = self._consumed[stream]
        truncated = False
        first_data = data_start(fd) if self._log.punched else 0
        if start < first_data:
            # The head of this range was dropped by the cap: resume at the next line.
            truncated = True
            start = min(first_data, end)
            probe = os.pread(fd, min(end - start, MAX_LINE_PIECE), start)
            newline = probe.find(b"\n")
            start = start + newline + 1 if newline >= 0 else start + len(probe)
            self._consumed[stream] = start
            if start >= end:
                return Chunk(stream, b"", truncated=True, end=start)
        want = min(end - start, max(budget, 4096))
        data = os.pread(fd, want, start)
        if not data:
            self._consumed[stream] = end  # the file shrank under us: skip the range
            return None
        if start + len(data) < end:
            # Stop at a line boundary; a very long line is cut into pieces.
            cut = data.rfind(b"\n") + 1
            # A line longer than the step: read on, doubling, until it ends (not a whole
            # MAX_LINE_PIECE at once: what a stream holds stays about one line).
            while cut == 0 and len(data) < MAX_LINE_PIECE and start + len(data) < end:
                more = os.pread(fd, min(end - start, MAX_LINE_PIECE, 2 * len(data)) - len(data), start + len(data))
                if not more:
                    break
                newline = more.rfind(b"\n")
                data += more
                if newline >= 0:
                    cut = len(data) - len(more) + newline + 1
            if cut == 0:
                cut = _char_boundary(data)
            data = data[:cut]
        self._consumed[stream] = start + len(data)
        if not data.endswith(b"\n"):
            data += b"\n"
        return Chunk(stream, data, truncated, self._consumed[stream])


KEEPALIVE = None  # what `follow` yields when the output was quiet for a keepalive period


async def follow(
    log: OutputLog,
    keepalive: float,
    stops: Iterable[asyncio.Future[None] | None] = (),
    step: int = _READ_STEP,
    ready: Callable[[], Awaitable[None]] | None = None,
    pace: Callable[[int], int] | None = None,
    start: Mapping[int, int] | None = None,
) -> AsyncIterator[list[Chunk] | None]:
    """Every line from the first, then new lines as they come, until the log finishes.

    Yields lists of chunks, or KEEPALIVE after `keepalive` seconds without output.
    Ends when the log is finished and fully read, or when one of `stops` resolves
    (the client left, the daemon is shutting down). Each yield holds about `step` bytes,
    and `ready` (the consumer's back-pressure) is awaited before each read from disk.
    With `pace` (the next step, given the one just taken: how far the consumer keeps up),
    the step changes after each yield: a fast client costs fewer turns per byte, and a
    stalled one is seen before its step has grown.
    With `start` (an offset per stream), the lines before those offsets are skipped.
    """
    watched = {f for f in stops if f is not None}
    size = step
    with log.reader(start) as reader:
        while True:
            if ready is not None:
                await ready()
            chunks = reader.read(size)
            if chunks:
                yield chunks
                del chunks  # not held while the consumer waits for its client
                # A client that keeps up never makes the writer wait: let the others run.
                await asyncio.sleep(0)
                if pace is not None:
                    size = pace(size)
                continue
            if log.finished or any(f.done() for f in watched):
                return
            change = log.next_change()
            done, _ = await asyncio.wait({change, *watched}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED)
            if done - {change}:
                change.cancel()
                return
            if not done:
                change.cancel()
                yield KEEPALIVE
