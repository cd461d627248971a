"""Copy with `cp -r` semantics: a directory's tree entry by entry, each file written
atomically (or exclusively with no_overwrite). Blocking: run in worker threads by `Files`."""

from __future__ import annotations

import errno
import os
import shutil
import stat

from ..errors import Conflict, Invalid, NotFound, Unprocessable, from_os_error
from .atomic import AtomicFile, NotRegularFile, make_parents_of
from .reading import node_kind


def copy(source: str, destination: str, no_overwrite: bool) -> str:
    try:
        src_st = os.lstat(source)
    except FileNotFoundError:
        raise NotFound(f"stat {source}: no such file or directory") from None
    except OSError as e:
        raise from_os_error(e, "error copying: ") from None
    target = destination
    if os.path.isdir(destination) and not os.path.islink(destination):
        target = os.path.join(destination, os.path.basename(source.rstrip("/")))
    if os.path.realpath(target) == os.path.realpath(source):
        raise Invalid(f"cannot copy {source} onto itself")
    if stat.S_ISDIR(src_st.st_mode) and (os.path.realpath(target) + "/").startswith(os.path.realpath(source) + "/"):
        raise Invalid(f"cannot copy directory {source} into itself")
    if not (stat.S_ISREG(src_st.st_mode) or stat.S_ISDIR(src_st.st_mode) or stat.S_ISLNK(src_st.st_mode)):
        # A device's or FIFO's content is endless or blocks, and none is copied inside a directory.
        kind = node_kind(src_st.st_mode)
        raise Unprocessable(f"error copying: {source}: not a regular file, directory or symlink ({kind})")
    if no_overwrite and os.path.lexists(target):
        raise Conflict(f"destination already exists: {target}", code="FILE_ALREADY_EXISTS")
    try:
        _copy_entry(source, target, no_overwrite)
    except FileExistsError as e:
        raise Conflict(f"destination already exists: {e.filename}", code="FILE_ALREADY_EXISTS") from None
    except OSError as e:
        raise from_os_error(e, "error copying: ") from None
    return target


def _copy_entry(source: str, target: str, no_overwrite: bool) -> None:
    st = os.lstat(source)
    if stat.S_ISLNK(st.st_mode):
        if not no_overwrite and os.path.lexists(target) and not os.path.isdir(target):
            mode = os.lstat(target).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                raise NotRegularFile(target)  # a device or FIFO in the way is not ours to remove
            os.unlink(target)
        os.symlink(os.readlink(source), target)
    elif stat.S_ISDIR(st.st_mode):
        if no_overwrite or not os.path.isdir(target):
            make_parents_of(target)
            os.mkdir(target, stat.S_IMODE(st.st_mode))
        with os.scandir(source) as it:
            for entry in it:
                _copy_entry(entry.path, os.path.join(target, entry.name), no_overwrite)
        shutil.copystat(source, target, follow_symlinks=False)
    elif stat.S_ISREG(st.st_mode):
        make_parents_of(target)
        if no_overwrite:
            _copy_file_exclusive(source, target, stat.S_IMODE(st.st_mode))
        else:
            _copy_file_atomic(source, target, stat.S_IMODE(st.st_mode))
    # Devices, FIFOs and sockets are not copied (as `cp -r` without --special-files).


def _copy_file_exclusive(source: str, target: str, mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with open(source, "rb") as src:
            copy_data(src.fileno(), fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(target)
        raise
    os.close(fd)


def _copy_file_atomic(source: str, target: str, mode: int) -> None:
    out = AtomicFile(target, mode)
    try:
        out.open()
        with open(source, "rb") as src:
            copy_data(src.fileno(), out.fd)
        out.commit()
    except BaseException:
        out.abort()
        raise


def copy_data(src_fd: int, dst_fd: int) -> int:
    """Kernel-side copy when possible (copy_file_range), else read/write."""
    total = 0
    try:
        while True:
            n = os.copy_file_range(src_fd, dst_fd, 1 << 30)
            if n == 0:
                return total
            total += n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or total:
            raise
    while chunk := os.read(src_fd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]
        total += len(chunk)
    return total
