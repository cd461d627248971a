"""One daemon per state dir: an exclusive flock on the state directory itself.

The lock is on the directory (not on a file in it), so wiping the directory's content
while the daemon runs does not drop it. The lock's fd is close-on-exec: children never
hold it, and it is released when the daemon exits. An in-place upgrade execs a new
binary in the same pid: only then is the fd made inheritable, and its number handed to
the new program in the environment (see `for_exec`), which takes it over instead of
locking again (a second flock of the same directory would conflict with its own).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

FD_VARIABLE = "SANDBOX_STATE_LOCK_FD"


class StateDirInUse(Exception):
    pass


class StateLock:
    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self.fd = fd

    @classmethod
    def acquire(cls, directory: Path, inherited_fd: int | None = None) -> StateLock:
        """Lock `directory` (created if missing); StateDirInUse names the holder."""
        directory.mkdir(parents=True, exist_ok=True)
        if inherited_fd is not None and _same_directory(inherited_fd, directory):
            os.set_inheritable(inherited_fd, False)
            return cls(directory, inherited_fd)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise StateDirInUse(f"state dir {directory} is in use by {who}; use --state-dir") from None
        except OSError:
            os.close(fd)
            raise
        return cls(directory, fd)

    def for_exec(self) -> dict[bytes, bytes]:
        """Keep the lock across an exec of this pid: the variable to add to its environment."""
        os.set_inheritable(self.fd, True)
        return {FD_VARIABLE.encode(): str(self.fd).encode()}

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _same_directory(fd: int, directory: Path) -> bool:
    try:
        held, wanted = os.fstat(fd), os.stat(directory)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (wanted.st_dev, wanted.st_ino)


def _holder(fd: int) -> int:
    """The pid holding a flock on the file of `fd`, from /proc/locks (0 if unknown)."""
    st = os.fstat(fd)
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have "->")
                if "->" not in fields and len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return 0
