"""Trees: write many files at once (all or nothing), list every file below a directory
(with content, bounded), delete a directory. Blocking: run in worker threads by `Files`."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import stat
from dataclasses import dataclass
from typing import Any

from ..errors import Invalid, NotFound, Unprocessable, from_os_error, os_error_text
from ..paths import ResolvedPath
from .atomic import make_directory_tree, make_parents_of, write_atomic
from .entries import file_entry, sorted_entries
from .reading import read_up_to

TREE_MAX_FILES = 10_000
TREE_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class TreeOptions:
    content: bool = True
    patterns: tuple[str, ...] = ()
    exclude_dirs: tuple[str, ...] = ()
    exclude_hidden: bool = False
    max_files: int = TREE_MAX_FILES
    max_bytes: int = TREE_MAX_BYTES


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


def write_tree(root: str, files: dict[str, bytes]) -> None:
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
                make_directory_tree(root, 0o755)
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
                write_atomic(target, content, 0o644)
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


def delete_tree(root: str, recursive: bool) -> None:
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


def read_tree(root: ResolvedPath, options: TreeOptions) -> dict[str, Any]:
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
                        data = read_up_to(entry.path, options.max_bytes - total_bytes)
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
