"""The few Linux calls the standard library lacks (through our `_native` extension).

Each one is best effort: it reports failure by return value and never raises,
because the daemon must still run where a call is missing (old kernels, gVisor).
"""

from __future__ import annotations

import errno
import os

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
