"""The directory walk shared by find and fuzzy search: Go WalkDir order, no symlinks.

Entries come in bytewise order, each directory's contents right after it (depth
first), symlinks are not followed (a symlink counts as a file), and excluded or hidden
directories are not entered. Unreadable subdirectories are skipped, not fatal.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from ..errors import NotFound, Unprocessable, os_error_text


def check_root(root: str) -> bool:
    """Whether `root` is a directory; raises for a root that is missing or unreadable."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise NotFound(f"lstat {root}: no such file or directory") from None
    except OSError as e:
        raise Unprocessable(os_error_text(e, "lstat", root)) from None
    is_dir = stat.S_ISDIR(st.st_mode)  # lstat: a symlink to a directory is not one
    if is_dir and not os.access(root, os.R_OK | os.X_OK):
        raise Unprocessable(f"open {root}: permission denied")
    return is_dir


def walk(root: str, exclude_dirs: frozenset[str], exclude_hidden: bool) -> Iterator[tuple[str, bool]]:
    """(path relative to root, is_directory), the root itself first as ".", in WalkDir order."""
    name = os.path.basename(root.rstrip("/")) or "/"
    is_dir = check_root(root)
    if exclude_hidden and name.startswith(".") and name not in (".", "/"):
        return
    if is_dir and name in exclude_dirs:
        return
    yield ".", is_dir
    if is_dir:
        yield from _walk_dir(root, "", exclude_dirs, exclude_hidden)


def _walk_dir(
    directory: str, prefix: str, exclude_dirs: frozenset[str], exclude_hidden: bool
) -> Iterator[tuple[str, bool]]:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
    except OSError:
        return  # unreadable: skipped
    for entry in entries:
        name = entry.name
        if exclude_hidden and name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir and name in exclude_dirs:
            continue
        relative = prefix + name
        yield relative, is_dir
        if is_dir:
            yield from _walk_dir(entry.path, relative + "/", exclude_dirs, exclude_hidden)
