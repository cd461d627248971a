"""A process's output read by byte offset: each stream's file is the source of truth, and
every byte in it keeps its offset for the life of the process (the size cap punches holes
at the head, it never shifts the rest).

`GET /process/{id}/logs?stdoutOffset=...`, the resumable streams and the MCP
`processGetLogs` tool call these; no HTTP here.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import Invalid, RangeNotSatisfiable
from ..linux.syscalls import data_start
from .logstore import STDERR, STDOUT, STREAM_NAMES, OutputLog, _char_boundary, _pread_all

DEFAULT_WINDOW_BYTES = 1024 * 1024
MAX_WINDOW_BYTES = 16 * 1024 * 1024

Encoding = Literal["utf-8", "base64"]


@dataclass
class _Stream:
    """One stream's file as seen now: its size and the oldest offset it still holds."""

    stream: int
    fd: int
    size: int
    oldest: int

    @property
    def name(self) -> str:
        return STREAM_NAMES[self.stream]


def _open(log: OutputLog, stream: int) -> _Stream:
    try:
        fd = os.open(log.paths[stream], os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return _Stream(stream, -1, 0, 0)
    size = os.fstat(fd).st_size
    return _Stream(stream, fd, size, data_start(fd) if size else 0)


def _close(streams: list[_Stream]) -> None:
    for s in streams:
        if s.fd >= 0:
            os.close(s.fd)


def _check(streams: list[_Stream], offsets: dict[int, int]) -> None:
    """400 for an offset past what was written; 416 (with the oldest offsets held) for one
    whose bytes the size cap dropped: never skip bytes silently."""
    for s in streams:
        offset = offsets[s.stream]
        if offset < 0:
            raise Invalid(f"invalid {s.name}Offset: {offset} is less than 0")
        if offset > s.size:
            raise Invalid(
                f"invalid {s.name}Offset: {offset} is past the end of {s.name} ({s.size} bytes written so far)"
            )
    dropped = [s for s in streams if offsets[s.stream] < s.oldest]
    if dropped:
        raise range_error(streams, dropped, offsets)


def range_error(streams: list[_Stream], dropped: list[_Stream], offsets: dict[int, int]) -> RangeNotSatisfiable:
    what = "; ".join(
        f"{s.name}Offset {offsets[s.stream]} is older than the oldest byte kept ({s.oldest})" for s in dropped
    )
    error = RangeNotSatisfiable(
        f"{what}: the log was capped (SANDBOX_MAX_LOG_FILE_BYTES) and its head dropped; read from the oldest offset"
    )
    error.extra = {f"{s.name}OldestOffset": s.oldest for s in streams}
    return error


def check_offsets(log: OutputLog, offsets: dict[int, int]) -> None:
    """Before a stream resumes from `offsets`: Invalid or RangeNotSatisfiable when it cannot."""
    streams = [_open(log, STDOUT), _open(log, STDERR)]
    try:
        _check(streams, offsets)
    finally:
        _close(streams)


def _char_length(lead: int) -> int:
    """Bytes of the UTF-8 character that starts with `lead` (1 for a byte that starts none)."""
    return 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4 if lead >> 3 == 0b11110 else 1


def _shares(available: list[int], budget: int) -> list[int]:
    """Split `budget` between two streams: each gets half, and what one does not need goes
    to the other."""
    first = min(available[0], max(budget // 2, budget - available[1]))
    return [first, min(available[1], budget - first)]


def read_window(
    log: OutputLog,
    over: bool,
    offsets: dict[int, int],
    max_bytes: int = DEFAULT_WINDOW_BYTES,
    encoding: Encoding = "utf-8",
) -> dict[str, Any]:
    """Up to `max_bytes` (both streams together) from `offsets`, with where to go on from.

    `over`: no more output will come (checked before the sizes are read, so that `ended`
    is never claimed for a stream still growing). As text, a part is cut on a UTF-8
    character boundary (its next offset stays before the cut character), and invalid
    bytes read as U+FFFD; as base64 the bytes are exact.
    """
    streams = [_open(log, STDOUT), _open(log, STDERR)]
    answer: dict[str, Any] = {}
    try:
        _check(streams, offsets)
        shares = _shares([s.size - offsets[s.stream] for s in streams], max_bytes)
        parts = []
        for s, share in zip(streams, shares):
            offset = offsets[s.stream]
            data = _pread_all(s.fd, offset, share) if share > 0 else b""
            parts.append(data)
        # The cap may have punched the head while we read: those bytes read as zeros.
        dropped = []
        for s, data in zip(streams, parts):
            oldest = data_start(s.fd) if data else 0
            if oldest > offsets[s.stream]:
                s.oldest = oldest
                dropped.append(s)
        if dropped:
            raise range_error(streams, dropped, offsets)
        for s, data in zip(streams, parts):
            offset = offsets[s.stream]
            if encoding == "utf-8" and data:
                complete = over and offset + len(data) == s.size
                if not complete:  # more may come: keep a character cut in two for the next read
                    cut = _char_boundary(data)
                    if cut == 0 and offset + len(data) < s.size:
                        # A window smaller than one character: give that character whole.
                        whole = _pread_all(s.fd, offset, _char_length(data[0]))
                        cut = _char_boundary(whole) or (len(whole) if over else 0)
                        data = whole
                    data = data[:cut]
            next_offset = offset + len(data)
            text = base64.b64encode(data).decode() if encoding == "base64" else data.decode("utf-8", "replace")
            answer[s.name] = text
            answer[f"{s.name}Offset"] = offset
            answer[f"{s.name}NextOffset"] = next_offset
            answer[f"{s.name}Size"] = s.size
            answer[f"{s.name}OldestOffset"] = s.oldest
            answer[f"{s.name}Ended"] = over and next_offset == s.size
    finally:
        _close(streams)
    answer["encoding"] = encoding
    return answer
