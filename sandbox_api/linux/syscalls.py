"""The few Linux calls the standard library lacks (through our `_native` extension).

Each one is best effort: it reports failure by return value and never raises,
because the daemon must still run where a call is missing (old kernels, gVisor).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from . import _native

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def set_child_subreaper() -> bool:
    """Become the reaper of every orphan below us (we may also be PID 1)."""
    try:
        _native.set_child_subreaper()
    except OSError:
        return False
    return True


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free `length` bytes at `offset` without changing the file size or offsets.

    A child keeps appending to its log file while we drop the oldest bytes, so the
    file must keep its size; the freed range reads back as zeros.
    """
    if length <= 0:
        return False
    try:
        _native.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length)
    except OSError:
        return False
    return True


def data_start(fd: int) -> int:
    """Offset of the first byte that is not in a punched hole (0 when unknown)."""
    try:
        return os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as e:
        if e.errno == errno.ENXIO:  # no data at all: empty, or one big hole
            try:
                return os.fstat(fd).st_size
            except OSError:
                return 0
        return 0  # EINVAL: the filesystem cannot tell; treat it all as data


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc only; a no-op elsewhere)."""
    _native.malloc_trim()


def set_oom_score_adj(pid: int | str, value: int) -> bool:
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
        return True
    except OSError:
        return False


def scrub_own_strings(secret: bytes, variables: tuple[bytes, ...]) -> bool:
    """Overwrite `secret` where other users could read it: in our own command line
    (an argument equal to it, or `--flag=<it>`; /proc/<pid>/cmdline is world-readable)
    and the values of `variables` in our initial environment (/proc/<pid>/environ).
    The kernel shows the process's original memory there, which Python never changes."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            for offset, length in _secret_spans(f.read(), lambda entry: _argument_secret(entry, secret)):
                _native.scrub_proc_area(0, offset, length)
        with open("/proc/self/environ", "rb") as f:
            for offset, length in _secret_spans(f.read(), lambda entry: _variable_value(entry, variables)):
                _native.scrub_proc_area(1, offset, length)
    except (OSError, ValueError):
        return False
    return True


def _secret_spans(area: bytes, secret_at: Callable[[bytes], int | None]) -> list[tuple[int, int]]:
    """(offset, length) of the secret part of each NUL-terminated entry of `area`."""
    spans = []
    offset = 0
    for entry in area.split(b"\0"):
        start = secret_at(entry)
        if start is not None and start < len(entry):
            spans.append((offset + start, len(entry) - start))
        offset += len(entry) + 1
    return spans


def _argument_secret(entry: bytes, secret: bytes) -> int | None:
    if not secret:
        return None
    if entry == secret:
        return 0
    if entry.startswith(b"-") and entry.endswith(b"=" + secret):
        return len(entry) - len(secret)
    return None


def _variable_value(entry: bytes, names: tuple[bytes, ...]) -> int | None:
    name, sep, _ = entry.partition(b"=")
    return len(name) + 1 if sep and name in names else None
