"""The few Linux calls the standard library lacks, through ctypes.

Each one is best effort: it reports failure by return value and never raises,
because the daemon must still run where a call is missing (old kernels, gVisor).
"""

from __future__ import annotations

import ctypes
import errno
import os

_PR_SET_CHILD_SUBREAPER = 36
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)  # our own symbols include libc; no ldconfig run
    except OSError:
        return None


_libc = _load_libc()


def libc() -> ctypes.CDLL | None:
    return _libc


def set_child_subreaper() -> bool:
    """Become the reaper of every orphan below us (we may also be PID 1)."""
    if _libc is None:
        return False
    return _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free `length` bytes at `offset` without changing the file size or offsets.

    A child keeps appending to its log file while we drop the oldest bytes, so the
    file must keep its size; the freed range reads back as zeros.
    """
    if _libc is None or length <= 0:
        return False
    fallocate = _libc.fallocate
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    return fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0


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
    trim = getattr(_libc, "malloc_trim", None) if _libc is not None else None
    if trim is not None:
        trim(0)


def set_oom_score_adj(pid: int | str, value: int) -> bool:
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
        return True
    except OSError:
        return False
