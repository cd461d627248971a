"""Writing a file so that no reader ever sees it half-written, and no failure leaves debris.

The new content goes into an unnamed file (O_TMPFILE) in the target's directory; on
success it is fsynced, given a name and renamed over the target in one step. If the
upload fails, the client goes away or the daemon is killed, the unnamed file simply
vanishes with its descriptor: the old file is untouched and nothing is left behind.
Where O_TMPFILE is not supported (some filesystems), a hidden named temp file is used
instead and removed on failure.

An existing file keeps its mode and owner (as an in-place overwrite would); a new one
gets the requested mode, less the umask. A symlink is written through, not replaced.
A target that is neither a regular file nor absent (a device such as /dev/null, a FIFO,
a socket) is refused: the rename would replace the node itself.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from .. import config
from .pipeline import write_all

_PROC_FD = "/proc/self/fd"


def make_parents_of(path: str) -> None:
    """mkdir -p (0755) of the parent; a file in the way is "not a directory" (as Go says)."""
    parent = os.path.dirname(path) or "/"
    try:
        os.makedirs(parent, 0o755, exist_ok=True)
    except FileExistsError as e:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), e.filename) from None


class NotRegularFile(OSError):
    """The target exists and is a device, FIFO or socket (a directory is EISDIR)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EINVAL, "not a regular file", path)


def check_replaceable(path: str) -> os.stat_result | None:
    """The stat of `path` (links followed), None when absent; a node that is not a regular
    file is refused (IsADirectoryError, NotRegularFile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path)
    return st


class AtomicFile:
    """Blocking operations; run them in a worker thread."""

    def __init__(self, target: str, mode: int) -> None:
        self.target = target
        self.mode = mode & 0o777
        self.fd = -1
        self._named_temp: str | None = None
        self._existing_mode: int | None = None
        self._owner: tuple[int, int] | None = None

    def open(self) -> None:
        target = self.target
        if os.path.islink(target):
            target = os.path.realpath(target)
        self.target = target
        parent = os.path.dirname(target) or "/"
        make_parents_of(target)
        existing = check_replaceable(target)
        if existing is not None:
            self._existing_mode = stat.S_IMODE(existing.st_mode)
            if os.geteuid() == 0:
                self._owner = (existing.st_uid, existing.st_gid)
        try:
            self.fd = os.open(parent, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
            self._named_temp = os.path.join(parent, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
            self.fd = os.open(self._named_temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.write_all([data])

    def write_all(self, pieces: list) -> None:
        write_all(self.fd, pieces)

    def commit(self) -> None:
        if self._existing_mode is not None:
            os.fchmod(self.fd, self._existing_mode)
        else:
            os.fchmod(self.fd, self.mode & ~config.PROCESS_UMASK)
        if self._owner is not None:
            os.fchown(self.fd, *self._owner)
        os.fsync(self.fd)
        if self._named_temp is None:
            parent = os.path.dirname(self.target) or "/"
            named = f".{os.path.basename(self.target)}.{secrets.token_hex(4)}.tmp"
            dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                # A dir_fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which names the
                # unnamed file through its /proc link (plain link() would not follow it).
                os.link(f"{_PROC_FD}/{self.fd}", named, dst_dir_fd=dir_fd, follow_symlinks=True)
            finally:
                os.close(dir_fd)
            self._named_temp = os.path.join(parent, named)
        check_replaceable(self.target)  # again: a node may have taken the file's place meanwhile
        os.replace(self._named_temp, self.target)
        self._named_temp = None
        self.close()

    def abort(self) -> None:
        self.close()
        if self._named_temp is not None:
            try:
                os.unlink(self._named_temp)
            except OSError:
                pass
            self._named_temp = None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def make_directory_tree(path: str, mode: int) -> None:
    """`mkdir -p` with Go's MkdirAll modes; NotADirectoryError if `path` is something else."""
    if os.path.isdir(path):
        return
    if os.path.lexists(path):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    # Go's MkdirAll gives every new directory the same mode.
    parents = []
    current = path
    while not os.path.exists(current):
        parents.append(current)
        current = os.path.dirname(current)
    for directory in reversed(parents):
        try:
            os.mkdir(directory, mode & 0o777)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """`data` as the whole content of `path`, replaced in one rename (or not at all)."""
    target = AtomicFile(path, mode)
    try:
        target.open()
        target.write(data)
        target.commit()
    except BaseException:
        target.abort()
        raise
