"""The filesystem service: read, write, list, delete, and (in tree.py, copying.py) trees
and copy. No HTTP here.

Every call takes resolved paths (`http/paths.py`) and runs its blocking work in a worker
thread. Errors are raised as `sandbox_api.errors` types with the original's messages
(`<op> <abs path>: <errno text>`) and statuses; a full disk is always 507.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import names  # noqa: F401  (registers the go_replace codec error handler used below)
from ..errors import (
    Invalid,
    NotFound,
    Unprocessable,
    from_os_error,
    os_error_text,
    stat_error,
)
from ..identity import Identity, run_as
from ..paths import ResolvedPath
from . import copying, tree
from .atomic import make_directory_tree, write_atomic
from .entries import file_entry, sorted_entries
from .reading import TextReader, open_regular, read_bounded, read_line_range


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
            await self.run(make_directory_tree, p.absolute, mode)
        except OSError as e:
            raise from_os_error(e, "error creating directory: ", op="mkdir") from None

    async def write_bytes(self, p: ResolvedPath, data: bytes, mode: int) -> None:
        try:
            await self.run(write_atomic, p.absolute, data, mode)
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
        await self.run(tree.write_tree, root.absolute, files)
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

    async def read_tree(self, root: ResolvedPath, options: tree.TreeOptions) -> dict[str, Any]:
        return await self.run(tree.read_tree, root, options)

    async def delete_tree(self, root: ResolvedPath, recursive: bool) -> None:
        await self.run(tree.delete_tree, root.absolute, recursive)

    # --- copy ----------------------------------------------------------------------

    async def copy(self, source: ResolvedPath, destination: ResolvedPath, no_overwrite: bool) -> str:
        """`cp -r` semantics; returns the final target. 409 when it exists and no_overwrite."""
        return await self.run(copying.copy, source.absolute, destination.absolute, no_overwrite)


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
