"""The filesystem service: read, write, list, delete, trees, copy. No HTTP here.

Every call takes resolved paths (`http/paths.py`) and runs its blocking work in a worker
thread. Errors are raised as `sandbox_api.errors` types with the original's messages
(`<op> <abs path>: <errno text>`) and statuses; a full disk is always 507.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import names  # noqa: F401  (registers the go_replace codec error handler used below)
from ..errors import (
    Conflict,
    Invalid,
    NotFound,
    Unprocessable,
    from_os_error,
    os_error_text,
    stat_error,
)
from ..http.paths import ResolvedPath
from ..identity import Identity, run_as
from .atomic import AtomicFile, NotRegularFile, make_parents_of
from .entries import file_entry, sorted_entries
from .reading import TextReader, node_kind, open_regular, read_at_most, read_bounded, read_line_range

TREE_MAX_FILES = 10_000
TREE_MAX_BYTES = 32 * 1024 * 1024


def parse_permissions(value: str | None, default: int, *, quoted: bool = True) -> int:
    """An octal permission string ("0644", "755"); Invalid with the original's message."""
    if value is None or value == "":
        return default
    if value.isdigit() and all(c in "01234567" for c in value):
        mode = int(value, 8)
        if mode < 1 << 32:
            return mode
        reason = "value out of range"
    else:
        reason = "invalid syntax"
    shown = f"'{value}'" if quoted else ""
    sep = " " if quoted else ""
    raise Invalid(f'invalid permissions format{sep}{shown}: strconv.ParseUint: parsing "{value}": {reason}')


@dataclass
class Download:
    fd: int
    size: int
    mtime: float
    name: str


T = TypeVar("T")


class Files:
    """Filesystem operations on user paths, in worker threads acting as the workload
    user when one is configured (see identity.py)."""

    def __init__(self, identity: Identity | None = None, max_text_read: int = 128 * 1024) -> None:
        self.identity = identity
        self.max_text_read = max_text_read  # bytes: reads answered in one message (MCP, codegen)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread, with the workload user's file permissions."""
        return await run_as(self.identity, fn, *args)

    # --- reading -------------------------------------------------------------------

    async def is_directory(self, p: ResolvedPath) -> bool:
        """stat (following links); 404 when missing, 500 on other errors."""
        try:
            st = await self.run(os.stat, p.absolute)
        except FileNotFoundError:
            raise NotFound(f"stat {p.absolute}: no such file or directory") from None
        except OSError as e:
            raise stat_error(e, p.absolute) from None
        return stat.S_ISDIR(st.st_mode)

    async def list_directory(self, p: ResolvedPath) -> dict[str, Any]:
        try:
            return await self.run(_list_directory, p)
        except OSError as e:
            raise from_os_error(e, "error listing directory: ") from None

    async def open_text(self, p: ResolvedPath) -> tuple[dict[str, Any], TextReader]:
        """The JSON read's File entry (no content yet) and a reader of its text, to stream."""
        entry, fd = await self.run(_open_text, p)
        return entry, TextReader(fd)

    async def read_text(self, p: ResolvedPath) -> dict[str, Any]:
        """The JSON read's File entry with its content in one piece: refused past max_text_read."""
        return await self.run(_read_text, p, self.max_text_read)

    async def read_lines(self, p: ResolvedPath, start: int, end: int) -> str | None:
        """Lines start..end (1-based, inclusive; more than max_text_read bytes of them are
        refused); None when the file has fewer lines."""
        return await self.run(_read_lines, p, start, end, self.max_text_read)

    async def open_download(self, p: ResolvedPath) -> Download:
        return await self.run(_open_download, p)

    # --- writing -------------------------------------------------------------------

    async def make_directory(self, p: ResolvedPath, mode: int) -> None:
        try:
            await self.run(_make_directory, p.absolute, mode)
        except OSError as e:
            raise from_os_error(e, "error creating directory: ", op="mkdir") from None

    async def write_bytes(self, p: ResolvedPath, data: bytes, mode: int) -> None:
        try:
            await self.run(_write_atomic, p.absolute, data, mode)
        except OSError as e:
            raise from_os_error(e, "error writing file: ", op="open" if e.errno == errno.EISDIR else None) from None

    async def edit(self, p: ResolvedPath, old: str, new: str, replace_all: bool) -> int:
        """Replace `old` by `new` (exactly one occurrence unless `replace_all`); the count."""
        if not old:
            raise Invalid("oldString must not be empty")
        if old == new:
            raise Invalid("oldString and newString are identical")
        text = (await self.read_text(p))["content"]
        count = text.count(old)
        if count == 0:
            raise Invalid(f"oldString not found in {p.display}")
        if count > 1 and not replace_all:
            raise Invalid(
                f"oldString found {count} times in {p.display}: add context to make it unique, or set replaceAll"
            )
        updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
        await self.write_bytes(p, updated.encode("utf-8"), 0o644)  # an existing file keeps its mode
        return count if replace_all else 1

    # --- deleting ------------------------------------------------------------------

    async def delete(self, p: ResolvedPath, recursive: bool) -> str:
        """Delete; returns "directory" or "file". A symlink (dangling too) is unlinked."""
        return await self.run(_delete, p.absolute, recursive)

    # --- trees ---------------------------------------------------------------------

    async def write_tree(self, root: ResolvedPath, files: dict[str, bytes]) -> dict[str, Any]:
        await self.run(_write_tree, root.absolute, files)
        try:
            return await self.run(_list_directory, root)
        except OSError as e:
            raise from_os_error(e, "error getting updated file system tree: ") from None

    async def tree_listing(self, root: ResolvedPath) -> dict[str, Any]:
        try:
            st = await self.run(os.stat, root.absolute)
        except FileNotFoundError:
            raise Invalid("path is not a directory") from None
        except OSError as e:
            raise Unprocessable(os_error_text(e, "stat", root.absolute)) from None
        if not stat.S_ISDIR(st.st_mode):
            raise Invalid("path is not a directory")
        try:
            return await self.run(_list_directory, root)
        except OSError as e:
            raise from_os_error(e, "error getting file system tree: ") from None

    async def read_tree(self, root: ResolvedPath, options: TreeOptions) -> dict[str, Any]:
        return await self.run(_read_tree, root, options)

    async def delete_tree(self, root: ResolvedPath, recursive: bool) -> None:
        await self.run(_delete_tree, root.absolute, recursive)

    # --- copy ----------------------------------------------------------------------

    async def copy(self, source: ResolvedPath, destination: ResolvedPath, no_overwrite: bool) -> str:
        """`cp -r` semantics; returns the final target. 409 when it exists and no_overwrite."""
        return await self.run(_copy, source.absolute, destination.absolute, no_overwrite)


@dataclass(frozen=True)
class TreeOptions:
    content: bool = True
    patterns: tuple[str, ...] = ()
    exclude_dirs: tuple[str, ...] = ()
    exclude_hidden: bool = False
    max_files: int = TREE_MAX_FILES
    max_bytes: int = TREE_MAX_BYTES


# --- blocking implementations (worker threads) ----------------------------------------


def _list_directory(p: ResolvedPath) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    subdirectories: list[dict[str, str]] = []
    with os.scandir(p.absolute) as it:
        entries = sorted_entries(it)
    # normpath(join(display, name)) once for the directory: names hold no "/".
    base = os.path.normpath(p.display)
    prefix = "" if base == "." else base.rstrip("/") + "/"
    for entry in entries:
        path = prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # vanished since readdir: leave it out
        if stat.S_ISDIR(st.st_mode):
            subdirectories.append({"path": path, "name": entry.name})
        else:
            files.append(file_entry(path, st, name=entry.name))
    return {"path": p.display, "name": p.name, "files": files, "subdirectories": subdirectories}


def _read_up_to(path: str, budget: int) -> bytearray | None:
    """The regular file's bytes, None past `budget` of them."""
    fd, _ = open_regular(path)
    try:
        return read_at_most(fd, budget)
    finally:
        os.close(fd)


def _open_text(p: ResolvedPath) -> tuple[dict[str, Any], int]:
    try:
        fd, st = open_regular(p.absolute)
    except OSError as e:
        raise from_os_error(e, "error reading file: ", op="open") from None
    try:
        entry = file_entry(p.display, st, os.lstat(p.absolute))
    except OSError as e:
        os.close(fd)
        raise from_os_error(e, "error reading file: ", op="lstat") from None
    entry["name"] = ""  # the original never fills it on a JSON read
    return entry, fd


def _read_text(p: ResolvedPath, limit: int) -> dict[str, Any]:
    entry, fd = _open_text(p)
    try:
        entry["content"] = read_bounded(fd, p.absolute, limit)
    except OSError as e:
        raise from_os_error(e, "error reading file: ", op="read") from None
    finally:
        os.close(fd)
    return entry


def _read_lines(p: ResolvedPath, start: int, end: int, limit: int) -> str | None:
    _, fd = _open_text(p)
    try:
        return read_line_range(fd, p.absolute, start, end, limit)
    except OSError as e:
        raise from_os_error(e, "error reading file: ", op="read") from None
    finally:
        os.close(fd)


def _open_download(p: ResolvedPath) -> Download:
    try:
        st = os.stat(p.absolute)
    except OSError as e:
        raise from_os_error(e, "error reading file: ", op="stat") from None
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        raise Unprocessable(f"error opening file: open {p.absolute}: not a regular file")
    try:
        fd = os.open(p.absolute, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise from_os_error(e, "error opening file: ", op="open") from None
    st = os.fstat(fd)
    return Download(fd=fd, size=st.st_size, mtime=st.st_mtime, name=os.path.basename(p.absolute))


def _make_directory(path: str, mode: int) -> None:
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


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    target = AtomicFile(path, mode)
    try:
        target.open()
        target.write(data)
        target.commit()
    except BaseException:
        target.abort()
        raise


def _delete(path: str, recursive: bool) -> str:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotFound("file or directory not found") from None
    except OSError as e:
        raise from_os_error(e, "") from None
    if stat.S_ISDIR(st.st_mode):
        try:
            if recursive:
                shutil.rmtree(path)
            else:
                os.rmdir(path)
        except OSError as e:
            raise from_os_error(e, "error deleting directory: ", op="remove") from None
        return "directory"
    try:
        os.unlink(path)
    except OSError as e:
        raise from_os_error(e, "error deleting file: ", op="remove") from None
    return "file"


def tree_target(root: str, key: str) -> str:
    """Where a PUT tree key is written: below `root`, never outside it. A leading `/` is
    joined under the root (as Go's filepath.Join does); a `..` component could escape, and
    a key naming the root itself names no file: both are 400."""
    parts = key.split("/")
    if ".." in parts or all(part in ("", ".") for part in parts):
        raise Invalid(f"invalid file key {key!r}: keys are file paths below the tree root, without '..'")
    return os.path.normpath(f"{root}/{key}")


def _missing_ancestors(path: str) -> list[str]:
    """`path` and its ancestors that do not exist, the deepest first."""
    missing = []
    while not os.path.lexists(path) and path not in ("", "/"):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _write_tree(root: str, files: dict[str, bytes]) -> None:
    """All or nothing, as far as this request is concerned: on a failure (a full disk...)
    the files and directories it created are removed (files it replaced keep their new
    content: their old one is gone)."""
    targets = {key: tree_target(root, key) for key in files}  # every key checked before anything is written
    created_dirs: list[str] = []
    created_files: list[str] = []
    try:
        if not os.path.isdir(root):
            missing = _missing_ancestors(root)
            try:
                _make_directory(root, 0o755)
            except OSError as e:
                raise from_os_error(e, "error creating root directory: ", op="mkdir") from None
            created_dirs.extend(reversed(missing))
        for key, content in files.items():
            target = targets[key]
            missing = _missing_ancestors(os.path.dirname(target))
            try:
                make_parents_of(target)
            except OSError as e:
                raise from_os_error(e, "error creating parent directory: ", op="mkdir") from None
            created_dirs.extend(reversed(missing))
            existed = os.path.lexists(target)
            try:
                _write_atomic(target, content, 0o644)
            except OSError as e:
                raise from_os_error(e, "error writing file: ", op="open") from None
            if not existed:
                created_files.append(target)
    except BaseException:
        for path in created_files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for path in reversed(created_dirs):  # children before their parents
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise


def _delete_tree(root: str, recursive: bool) -> None:
    try:
        st = os.lstat(root)
    except OSError as e:
        raise Unprocessable(f"error deleting directory: {os_error_text(e, 'stat', root)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise Unprocessable("error deleting directory: path points to a file, not a directory")
    try:
        if recursive:
            shutil.rmtree(root)
        else:
            os.rmdir(root)
    except OSError as e:
        raise from_os_error(e, "error deleting directory: ", op="remove") from None


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _read_tree(root: ResolvedPath, options: TreeOptions) -> dict[str, Any]:
    """Every file and directory below `root` (full paths), optionally with content."""
    try:
        st = os.stat(root.absolute)
    except FileNotFoundError:
        raise NotFound(f"stat {root.absolute}: no such file or directory") from None
    except OSError as e:
        raise Unprocessable(os_error_text(e, "stat", root.absolute)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise Invalid("path is not a directory")
    files: list[dict[str, Any]] = []
    subdirectories: list[dict[str, str]] = []
    total_bytes = 0
    stack = [root.absolute]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted_entries(it)
        except OSError as e:
            raise Unprocessable(f"error reading directory: {os_error_text(e, 'open', directory)}") from None
        children = []
        for entry in entries:
            if options.exclude_hidden and entry.name.startswith("."):
                continue
            try:
                lst = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(lst.st_mode):
                if entry.name in options.exclude_dirs:
                    continue
                subdirectories.append({"path": entry.path, "name": entry.name})
                children.append(entry.path)
                continue
            if not _matches(entry.name, options.patterns):
                continue
            item = file_entry(entry.path, lst)
            if options.content:
                try:
                    target = os.stat(entry.path) if stat.S_ISLNK(lst.st_mode) else lst
                except OSError:
                    target = None
                if target is not None and stat.S_ISREG(target.st_mode):
                    too_much = Unprocessable(f"tree holds more than maxBytes ({options.max_bytes}) bytes of content")
                    if total_bytes + target.st_size > options.max_bytes:
                        raise too_much
                    try:
                        # At most what is left of maxBytes: a file may grow, /proc files say size 0.
                        data = _read_up_to(entry.path, options.max_bytes - total_bytes)
                        if data is None:
                            raise too_much
                        total_bytes += len(data)
                        item["content"] = data.decode("utf-8", "go_replace")
                    except OSError as e:
                        raise Unprocessable(f"error reading file: {os_error_text(e, 'open', entry.path)}") from None
            files.append(item)
            if len(files) > options.max_files:
                raise Unprocessable(f"tree holds more than maxFiles ({options.max_files}) files")
        stack.extend(reversed(children))
    return {
        "path": root.display,
        "name": root.name,
        "files": files,
        "subdirectories": subdirectories,
        "recursive": True,
    }


def _copy(source: str, destination: str, no_overwrite: bool) -> str:
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
