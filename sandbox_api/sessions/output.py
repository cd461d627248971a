"""The output of one session command: whole in memory while small, on disk past that.

Up to `inline` bytes the output lives in memory only (the common case costs no file I/O).
Past that, everything so far and everything after goes to a file (up to `max_file`
bytes), and memory keeps only the head and a rolling tail, so a command printing 1 GB
holds `1.5 * inline` bytes in the daemon. The answer shows head and tail; the whole is
read back by byte offset.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import Invalid, RangeNotSatisfiable

log = logging.getLogger("sandbox_api.sessions")


def _char_start(data: bytes | bytearray, index: int) -> int:
    """`index` moved forward past UTF-8 continuation bytes (at most 3)."""
    end = min(len(data), index + 3)
    while index < end and data[index] & 0xC0 == 0x80:
        index += 1
    return index


def char_end(data: bytes | bytearray, end: int) -> int:
    """`end` moved back so that data[:end] does not stop inside a UTF-8 character."""
    start = end
    while start > 0 and end - start < 4 and data[start - 1] & 0xC0 == 0x80:
        start -= 1
    if start == 0 or end - start >= 4:
        return end
    lead = data[start - 1]
    width = 2 if lead & 0xE0 == 0xC0 else 3 if lead & 0xF0 == 0xE0 else 4 if lead & 0xF8 == 0xF0 else 1
    return end if end - (start - 1) >= width else start - 1


class Output:
    def __init__(self, exec_id: int, path: Path, inline: int, max_file: int) -> None:
        self.exec_id = exec_id
        self.path = path
        self.inline = max(2, inline)
        self.max_file = max_file
        self.total = 0  # bytes the command wrote
        self.stored = 0  # bytes on disk (once spilled)
        self._first = bytearray()  # the first `inline` bytes (then only the head half)
        self._tail = bytearray()  # the last `inline // 2` bytes, once spilled
        self._fd = -1
        self.spilled = False
        self.disk_error = ""

    @property
    def head_bytes(self) -> int:
        return self.inline // 2

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        if not self.spilled:
            if len(self._first) + len(data) <= self.inline:
                self._first += data
                return
            self._spill()
        self._store(data)
        half = self.inline - self.head_bytes
        self._tail += data[-half:]
        if len(self._tail) > half:
            del self._tail[: len(self._tail) - half]

    def _spill(self) -> None:
        """The output outgrew memory: from now on it is kept on disk."""
        self.spilled = True
        half = self.inline - self.head_bytes
        self._tail = self._first[-half:]
        first = bytes(self._first)
        del self._first[self.head_bytes :]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as e:
            self.disk_error = f"cannot keep the whole output: {e.strerror}"
            log.warning("session output %s: %s", self.path, e)
            return
        self._store(first)

    def _store(self, data: bytes) -> None:
        if self._fd < 0:
            return
        room = self.max_file - self.stored
        if room <= 0:
            return
        chunk = data[:room]
        try:
            written = 0
            while written < len(chunk):
                written += os.write(self._fd, chunk[written:])
        except OSError as e:  # a full disk: the answer still has head and tail
            self.disk_error = f"cannot keep the whole output: {e.strerror}"
            log.warning("session output %s: %s", self.path, e)
            self.stored += written
            self._close_file()
            return
        self.stored += len(chunk)

    def _close_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def finish(self) -> None:
        """No more output: release the write fd (the file stays for reads)."""
        self._close_file()

    def discard(self) -> None:
        self._close_file()
        if self.spilled:
            try:
                self.path.unlink()
            except OSError:
                pass

    # --- what the answer shows ---------------------------------------------------------------

    @property
    def truncated(self) -> bool:
        return self.spilled

    @property
    def tail_offset(self) -> int:
        return self.total - len(self._tail) + (_char_start(self._tail, 0) if self._tail else 0)

    @property
    def head_end(self) -> int:
        return char_end(self._first, len(self._first)) if self.spilled else self.total

    def text(self) -> str:
        """All of it, or the head, a line saying what was left out and where, and the tail."""
        if not self.spilled:
            return self._first.decode("utf-8", "replace")
        head = bytes(self._first[: self.head_end])
        tail = bytes(self._tail[_char_start(self._tail, 0) :])
        omitted = self.tail_offset - self.head_end
        note = (
            f"\n[... {omitted} bytes omitted (offsets {self.head_end} to {self.tail_offset}); all {self.total} bytes "
            f"of output {self.exec_id} can be read by offset ...]\n"
        )
        return head.decode("utf-8", "replace") + note + tail.decode("utf-8", "replace")

    # --- reading back by offset ----------------------------------------------------------------

    def read(self, offset: int, max_bytes: int) -> tuple[bytes, int]:
        """Up to `max_bytes` from `offset`, cut at a character boundary; and the next offset."""
        if offset < 0 or offset > self.total:
            raise Invalid(f"offset {offset} is out of range: output {self.exec_id} holds {self.total} bytes")
        if not self.spilled:
            data = bytes(self._first[offset : offset + max_bytes])
        else:
            if offset > self.stored or (offset == self.stored and self.stored < self.total):
                raise RangeNotSatisfiable(
                    f"offset {offset} is past the {self.stored} bytes kept of output {self.exec_id} "
                    f"({self.total} bytes were written; {self.disk_error or 'the file stops at its size limit'})",
                    storedBytes=self.stored,
                )
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    data = f.read(min(max_bytes, self.stored - offset))
            except OSError as e:
                raise RangeNotSatisfiable(
                    f"output {self.exec_id} is no longer on disk: {e.strerror}", storedBytes=0
                ) from None
        end = char_end(data, len(data)) if len(data) == max_bytes else len(data)
        if end == 0 and data:  # a window smaller than one character: give the character whole
            end = len(data)
        return data[:end], offset + end
