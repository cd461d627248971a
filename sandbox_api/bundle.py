"""What differs when the daemon runs as the one-file binary (packaging/static/).

The binary is a static CPython that reads its code from the zip at its own end and
has its native extensions compiled in: nothing is unpacked, nothing is left in a temp
dir, children inherit no loader variables. What remains different:
- `rg` travels compressed inside the zip; `ripgrep()` turns it into an executable
  in memory (a sealed memfd) on the first content search, never on disk.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from collections.abc import Callable
from importlib import resources

FROZEN = bool(getattr(sys, "frozen", False))

_when_listening: list[Callable[[], None]] = []


def when_listening(action: Callable[[], None]) -> None:
    """Run `action` once the daemon listens (the binary's boot ends its start-up measures then)."""
    _when_listening.append(action)


def listening() -> None:
    while _when_listening:
        _when_listening.pop()()


_rg_lock = threading.Lock()
_rg_fd: int | None = None


def ripgrep() -> int | None:
    """An fd of the bundled `rg` program (run it as /proc/self/fd/N, passing the fd);
    None outside the binary. Made once, on first use, and kept: ~5 MB of memory."""
    global _rg_fd
    if not FROZEN:
        return None
    with _rg_lock:
        if _rg_fd is None:
            _rg_fd = _executable_in_memory("rg", (resources.files("sandbox_api") / "_bundled" / "rg").read_bytes())
        return _rg_fd


def _executable_in_memory(name: str, data: bytes) -> int:
    """A read-only fd of a sealed memfd holding `data`."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(
            fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
        )
        # Executing a file that is open for writing fails (ETXTBSY): hand out a read-only fd.
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)
