"""The output of one managed process, on disk: the source of truth for every reader.

A child writes straight into `<key>.stdout.log` and `<key>.stderr.log` (O_APPEND), so
its output is safe even when the daemon dies. The daemon never copies that output;
it keeps an **index** of it: a list of records `(stream, end offset)`, each saying
"the lines of `stream` up to `end` come next". Consecutive lines of one stream share
one record, which is extended in place, so the index grows only when the output
switches between stdout and stderr. The index lives in memory and is mirrored to
`<key>.index` (16 bytes a record) from its second record on: output of one stream
only, by far the common case, needs no index file at all, and each file created
costs (0.4-1 ms of kernel time on some disks).

A record only ever ends on a line boundary (or at the end of a finished run), so
readers never split a line or a multibyte character, and replay order is the order
in which the lines were observed. A reader keeps a record number and a consumed
offset per stream: it replays from record 0, then re-reads the last record (which may
have grown) and whatever follows, after each change notification. The output itself
is never held in memory, a slow reader only falls behind on disk, and no line can be
skipped or sent twice. The files are capped by punching holes at their head (oldest
bytes first), which keeps every offset valid while the child goes on appending.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..linux.syscalls import data_start, punch_hole

if TYPE_CHECKING:
    from .logreader import LogReader

log = logging.getLogger("sandbox_api.process")

STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

# Where the output was cut. Inline (a response carries only the tail): the rest is on disk,
# and the marker names the route that replays it. In a replay: the head was dropped by the
# log file's cap, and is gone.
TRUNCATION_MARKER = "[... truncated: earlier output was dropped (SANDBOX_MAX_LOG_FILE_BYTES) ...]\n"


def inline_truncation_marker(identifier: str) -> str:
    return f"[... truncated: GET /process/{identifier}/logs/stream replays all the output kept ...]\n"


_RECORD = struct.Struct("<QQ")
# Records kept in memory per process; beyond this the oldest are forgotten (their
# lines are still replayed, only their interleaving with the other stream is lost).
MAX_RECORDS = 65536
_SCAN_STEP = 64 * 1024
_SCAN_FIRST_STEP = 4096
_READ_STEP = 256 * 1024
# A line longer than this is delivered to streams in pieces (bounded memory).
MAX_LINE_PIECE = 1024 * 1024
_PAGE = 4096
_FILE_MODE = 0o644


@dataclass(frozen=True)
class Chunk:
    """Complete lines of one stream, as written (bytes, each line ending with "\\n");
    `truncated` means older output of this stream was dropped by the size cap just
    before these lines."""

    stream: int
    data: bytes
    truncated: bool = False
    end: int = 0  # the offset in the stream's file just past these lines: where a resumed read starts

    @property
    def stream_name(self) -> str:
        return STREAM_NAMES[self.stream]


class OutputLog:
    """The files of one process's output, its index, and change notification."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key
        base = f"{directory}/{key}"  # strings, not Paths: this runs for every exec
        self.paths = {STDOUT: f"{base}.stdout.log", STDERR: f"{base}.stderr.log"}
        self._index_path = f"{base}.index"
        self.records: list[list[int]] = []  # [stream, end], the last one may still grow
        self.base = 0  # absolute number of records[0] (older ones were forgotten)
        self._indexed = {STDOUT: 0, STDERR: 0}
        self._scanned = {STDOUT: 0, STDERR: 0}
        self._fds: dict[int, int] = {}
        self._index_fd = -1
        self._index_failed = False
        self._finished = False
        self._waiters: list[asyncio.Future[None]] = []
        self._largest = 0  # data bytes of the biggest file, as of the last cap check
        self.punched = False  # some head was dropped by the cap: readers must look for holes

    # --- life cycle ---------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return Path(self._index_path)

    @staticmethod
    def paths_to_create(directory: Path, key: str) -> list[str]:
        """The files a process needs from its start (the index comes later, if ever)."""
        return [f"{directory}/{key}.stdout.log", f"{directory}/{key}.stderr.log"]

    def load(self, finished: bool) -> None:
        """Recover the index of existing files (after a daemon restart)."""
        self.records, self.base = [], 0
        self._indexed = {STDOUT: 0, STDERR: 0}
        try:
            with open(self._index_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        if data is not None:
            usable = len(data) - len(data) % _RECORD.size
            total = usable // _RECORD.size
            for number in range(total):
                stream, end = _RECORD.unpack_from(data, number * _RECORD.size)
                if stream in self._indexed:  # zeros: a record lost to the cap
                    if not self.records:
                        self.base = number
                    self.records.append([stream, end])
                    self._indexed[stream] = max(self._indexed[stream], end)
            self._trim()
        if not self.records:
            # No index (one stream only, or it was never written): the lines of
            # each stream are whatever its file holds.
            for stream, path in self.paths.items():
                size = _size(path)
                if size:
                    end = size if finished else _last_newline_in(path, size)
                    if end > 0:
                        self.records.append([stream, end])
                        self._indexed[stream] = end
        self._scanned = dict(self._indexed)
        sizes = [_size(p) for p in self.paths.values()]
        self._largest = max(sizes + [len(data or b"")])
        self.punched = any(_has_hole(p) for p, size in zip(self.paths.values(), sizes) if size)

    def open(self) -> None:
        """Open the files of a running process (created if missing), for its whole life.

        stdout and stderr are opened once, read-write and append-only: the same fds
        are the child's stdout and stderr (at each run), carry our notices, and are
        read back by the scan.
        """
        if self._fds:
            return
        try:
            for stream, path in self.paths.items():
                self._fds[stream] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, _FILE_MODE)
            if self.base + len(self.records) >= 2:
                self._index_fd = os.open(self._index_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        except OSError:
            self.close()
            raise
        self._finished = False

    def child_fds(self) -> tuple[int, int]:
        """The fds to give a child as stdout and stderr (owned by this log)."""
        return self._fds[STDOUT], self._fds[STDERR]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._index_fd >= 0:
            os.close(self._index_fd)
            self._index_fd = -1

    @property
    def finished(self) -> bool:
        return self._finished

    def end_run(self) -> None:
        """The child exited: index everything, an unterminated last line included."""
        self.scan(STDOUT, final=True)
        self.scan(STDERR, final=True)

    def finish(self, cap: int = 0) -> None:
        """No more output will come: index the rest, cap, and release every follower."""
        self.end_run()
        self.enforce_cap(cap)
        self.close()
        self._finished = True
        self._notify()

    def mark_finished(self) -> None:
        """For a process that was already over when the daemon started."""
        self._finished = True
        self._notify()

    # --- writing the index ----------------------------------------------------------

    def scan(self, stream: int, final: bool = False) -> None:
        """Index the lines of `stream` completed since the last scan.

        Only the new bytes are looked at, backwards from the end, so the cost is per
        wake-up, not per byte. With `final`, an unterminated last line is indexed too.
        """
        fd = self._fds.get(stream)
        if fd is None:
            return
        size = os.fstat(fd).st_size
        start = self._indexed[stream]
        if size <= start:
            return
        end = size if final else self._last_newline(fd, max(start, self._scanned[stream]), size)
        self._scanned[stream] = size
        if end <= start:
            return
        self._write_record(stream, end)
        self._indexed[stream] = end
        self._notify()

    def scan_all(self) -> None:
        self.scan(STDOUT)
        self.scan(STDERR)

    @staticmethod
    def _last_newline(fd: int, low: int, high: int) -> int:
        return _last_newline(fd, low, high)

    def _write_record(self, stream: int, end: int) -> None:
        if self.records and self.records[-1][0] == stream:
            self.records[-1][1] = end
        else:
            self.records.append([stream, end])
        number = self.base + len(self.records) - 1
        try:
            if self._index_fd < 0 and number >= 1 and not self._index_failed:
                # The output switched streams: from now on the order needs a file.
                self._index_fd = os.open(self._index_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
                os.pwrite(self._index_fd, b"".join(_RECORD.pack(*r) for r in self.records), self.base * _RECORD.size)
            elif self._index_fd >= 0:
                os.pwrite(self._index_fd, _RECORD.pack(stream, end), number * _RECORD.size)
        except OSError as e:
            # Disk full or log dir removed: the index stays in memory (only a daemon
            # restart would lose the interleaving of stdout and stderr).
            if not self._index_failed:
                log.warning("cannot write %s: %s", self.index_path, e.strerror)
            self._index_failed = True
        if len(self.records) > MAX_RECORDS:
            self._trim()

    def _trim(self) -> None:
        """Forget the oldest records beyond MAX_RECORDS (in memory and on disk)."""
        excess = len(self.records) - MAX_RECORDS
        if excess <= 0:
            return
        excess = max(excess, MAX_RECORDS // 4)
        del self.records[:excess]
        self.base += excess
        if self._index_fd >= 0:
            punch_hole(self._index_fd, 0, self.base * _RECORD.size // _PAGE * _PAGE)

    def append_notice(self, text: str) -> None:
        """Write a daemon notice (restart, stop, kill) into the stdout log (a full or
        removed log disk loses the notice, not the operation)."""
        fd = self._fds.get(STDOUT)
        try:
            if fd is None:
                fd = os.open(self.paths[STDOUT], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
                return
            os.write(fd, text.encode())
        except OSError as e:
            log.warning("cannot write a notice into %s: %s", self.paths[STDOUT], e.strerror)
            return
        self.scan(STDOUT)

    # --- caps -------------------------------------------------------------------------

    def enforce_cap(self, cap: int) -> None:
        """Drop the oldest bytes of each output file beyond `cap` (0 disables the cap)."""
        if cap <= 0 or (not self._fds and self._largest <= cap + cap // 4):
            return  # a finished log already within the cap: nothing to open
        largest = 0
        for path in self.paths.values():
            own = self._own_fd(path)
            try:
                fd = own if own >= 0 else os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                size = os.fstat(fd).st_size
                # Slack of a quarter of the cap: punch in big steps, not at every line.
                start = data_start(fd) if size > cap + cap // 4 else 0
                if size - start > cap + cap // 4:
                    cut = (size - cap) // _PAGE * _PAGE
                    if cut > start and punch_hole(fd, 0, cut):
                        start = cut
                        self.punched = True
                largest = max(largest, size - start)
            finally:
                if own < 0:
                    os.close(fd)
        self._largest = largest

    def _own_fd(self, path: str) -> int:
        for stream, stream_path in self.paths.items():
            if stream_path == path:
                return self._fds.get(stream, -1)
        return -1

    # --- change notification --------------------------------------------------------

    def next_change(self) -> asyncio.Future[None]:
        """A future resolved at the next indexed output or at the finish."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # --- reading ----------------------------------------------------------------------

    def tail(self, stream: int, max_bytes: int, marker: str = TRUNCATION_MARKER) -> str:
        """The last `max_bytes` of a stream (0 = all), as text, after `marker` if cut."""
        try:
            fd = os.open(self.paths[stream], os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return ""
        try:
            size = os.fstat(fd).st_size
            start = data_start(fd) if self.punched else 0
            if max_bytes > 0 and size - start > max_bytes:
                start = size - max_bytes
            data = _pread_all(fd, start, size - start)
        finally:
            os.close(fd)
        if start > 0:
            data = data.lstrip(b"\0")
            data = _skip_continuation_bytes(data)
            return marker + data.decode("utf-8", "replace")
        return data.decode("utf-8", "replace")

    def reader(self, start: Mapping[int, int] | None = None) -> LogReader:
        from .logreader import LogReader  # the reading side imports this module

        return LogReader(self, start)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _last_newline(fd: int, low: int, high: int) -> int:
    """Offset just past the last newline in [low, high), or -1."""
    pos = high
    step = _SCAN_FIRST_STEP  # the last newline is nearly always close to the end: read little first
    while pos > low:
        step = min(step, pos - low)
        chunk = os.pread(fd, step, pos - step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
        step = min(step * 2, _SCAN_STEP)
    return -1


def _last_newline_in(path: str, size: int) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _last_newline(fd, 0, size)
    finally:
        os.close(fd)


def _has_hole(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return data_start(fd) > 0
    finally:
        os.close(fd)


def _pread_all(fd: int, offset: int, length: int) -> bytes:
    parts = []
    while length > 0:
        data = os.pread(fd, min(length, 1 << 20), offset)
        if not data:
            break
        parts.append(data)
        offset += len(data)
        length -= len(data)
    return b"".join(parts)


def _skip_continuation_bytes(data: bytes) -> bytes:
    i = 0
    while i < min(3, len(data)) and (data[i] & 0xC0) == 0x80:
        i += 1
    return data[i:]


def _char_boundary(data: bytes) -> int:
    """The largest cut <= len(data) that does not split a UTF-8 sequence."""
    cut = len(data)
    back = 0
    while back < 3 and cut - back - 1 >= 0 and (data[cut - back - 1] & 0xC0) == 0x80:
        back += 1
    lead = cut - back - 1
    if lead >= 0:
        b = data[lead]
        need = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
        if need > back + 1:
            return lead
    return cut
