"""Reading a file as text with bounded memory, whatever the file.

- Only regular files are read as content. A device (/dev/zero, /dev/urandom) never ends,
  a FIFO or socket blocks: they are refused before they are opened (opening some devices
  has effects of its own), and the opened descriptor is checked again (a swap in between).
- The HTTP JSON read streams: `TextReader` decodes piece by piece, with Go's one U+FFFD
  per invalid byte, a UTF-8 sequence cut between two reads kept whole, so the text is
  exactly what decoding the whole file at once gives.
- A read whose answer is one message (MCP tools, codegen) stops at a limit and says so.

Everything here but `TextReader.next` is blocking; the service runs it in worker threads.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import stat

from .. import names  # noqa: F401  (registers the go_replace error handler used below)
from ..errors import Unprocessable

CHUNK = 256 * 1024
LIMIT_SETTING = "SANDBOX_MAX_TEXT_READ_BYTES"


def node_kind(st_mode: int) -> str:
    if stat.S_ISCHR(st_mode):
        return "a character device"
    if stat.S_ISBLK(st_mode):
        return "a block device"
    if stat.S_ISFIFO(st_mode):
        return "a named pipe"
    if stat.S_ISSOCK(st_mode):
        return "a socket"
    if stat.S_ISDIR(st_mode):
        return "a directory"
    return "a special file"


def not_regular(path: str, st_mode: int) -> Unprocessable:
    return Unprocessable(f"error reading file: read {path}: not a regular file ({node_kind(st_mode)})")


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """An fd on the regular file at `path` (links followed) and its stat. OSError as is;
    anything but a regular file is Unprocessable."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(path, st.st_mode)
    # O_NONBLOCK: should a FIFO have taken the file's place since the stat, the open does not hang.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def too_large(path: str, limit: int) -> Unprocessable:
    return Unprocessable(
        f"error reading file: {path} holds more than {limit} bytes, the limit of this read ({LIMIT_SETTING}); "
        f"download it with GET /filesystem/{path}?download=true"
    )


def _decoder() -> codecs.IncrementalDecoder:
    # "go_replace": one U+FFFD per invalid byte (names.py).
    return codecs.getincrementaldecoder("utf-8")("go_replace")


class TextReader:
    """A regular file's text, piece by piece (each piece about CHUNK bytes of the file),
    each piece read in a worker thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.bytes_read = 0
        self._decoder = _decoder()
        self._ended = False
        self._pending: asyncio.Future[str | None] | None = None

    async def next(self) -> str | None:
        """The next piece of text ("" is possible), None after the end."""
        self._pending = asyncio.get_running_loop().run_in_executor(None, self._read)
        # Shielded: when the caller is cancelled the read still ends before the fd is closed.
        return await asyncio.shield(self._pending)

    def _read(self) -> str | None:
        if self._ended:
            return None
        data = os.read(self.fd, CHUNK)
        if not data:  # read until EOF: /proc files report size 0 and have content
            self._ended = True
            return self._decoder.decode(b"", final=True)
        self.bytes_read += len(data)
        return self._decoder.decode(data)

    def close(self) -> None:
        """Close the fd, at once or when the read in flight ends (its number must not be
        reused under it)."""
        if self._pending is not None and not self._pending.done():
            self._pending.add_done_callback(self._close_after)
            return
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _close_after(self, read: asyncio.Future[str | None]) -> None:
        if not read.cancelled():
            read.exception()  # its caller has gone: an error of it is nobody's to report
        self.close()


def read_at_most(fd: int, budget: int) -> bytearray | None:
    """Everything up to EOF, or None past `budget` bytes (st_size is not trusted: /proc)."""
    data = bytearray()
    while chunk := os.read(fd, min(CHUNK, budget + 1 - len(data))):
        data += chunk
        if len(data) > budget:
            return None
    return data


def read_bounded(fd: int, path: str, limit: int) -> str:
    """The whole text, or `too_large` past `limit` bytes."""
    data = read_at_most(fd, limit)
    if data is None:
        raise too_large(path, limit)
    return data.decode("utf-8", "go_replace")


def read_line_range(fd: int, path: str, start: int, end: int, limit: int) -> str | None:
    """Lines `start`..`end` (1-based, inclusive) as `text.split("\\n")` numbers them, joined
    by "\\n"; None when the file has fewer lines than `end`. Reads no further than the end
    line, and refuses past `limit` bytes of wanted text. `1 <= start <= end` is the caller's."""
    line = 1  # the line number of the next byte read
    wanted = end - start + 1  # newlines that close the range (the last one is not kept)
    out = bytearray()
    taken = 0
    while chunk := os.read(fd, CHUNK):
        pos = 0
        if line < start:
            newlines = chunk.count(b"\n")
            if line + newlines < start:
                line += newlines
                continue
            for _ in range(start - line):
                pos = chunk.index(b"\n", pos) + 1
            line = start
        piece = chunk[pos:] if pos else chunk
        out += piece
        taken += piece.count(b"\n")
        if taken >= wanted:
            del out[_nth_newline(out, taken - wanted) :]
            break
        if len(out) > limit:
            raise too_large(path, limit)
    else:  # the end of the file came before the end line's newline
        if line < start or start + taken < end:
            return None
    if len(out) > limit:
        raise too_large(path, limit)
    return out.decode("utf-8", "go_replace")


def _nth_newline(data: bytearray, from_end: int) -> int:
    """The index of the newline that has `from_end` newlines after it."""
    index = len(data)
    for _ in range(from_end + 1):
        index = data.rindex(b"\n", 0, index)
    return index


def read_up_to(path: str, budget: int) -> bytearray | None:
    """The regular file's bytes, None past `budget` of them."""
    fd, _ = open_regular(path)
    try:
        return read_at_most(fd, budget)
    finally:
        os.close(fd)
