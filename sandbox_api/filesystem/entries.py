"""How files and directories are described on the wire: File, Directory, modes, times.

Pure functions of stat results; no HTTP. Everything here is blocking (stat, passwd
lookups, readdir) and runs in a worker thread.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# Go's os.FileMode type bits, which the original reports as an octal string.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20


def go_mode(st_mode: int) -> int:
    mode = st_mode & 0o777
    if stat.S_ISDIR(st_mode):
        mode |= _GO_DIR
    elif stat.S_ISLNK(st_mode):
        mode |= _GO_SYMLINK
    elif stat.S_ISFIFO(st_mode):
        mode |= _GO_NAMED_PIPE
    elif stat.S_ISSOCK(st_mode):
        mode |= _GO_SOCKET
    elif stat.S_ISBLK(st_mode):
        mode |= _GO_DEVICE
    elif stat.S_ISCHR(st_mode):
        mode |= _GO_DEVICE | _GO_CHAR_DEVICE
    if st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


@lru_cache(maxsize=1024)
def permissions(st_mode: int) -> str:
    """The original's `permissions`: Go's FileMode in octal, no leading zero ("644")."""
    return format(go_mode(st_mode), "o")


def rfc3339_nano(ns: int) -> str:
    """Go's time.Time JSON: RFC 3339 with nanoseconds, trailing zeros dropped, UTC as Z."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    base, zone = _rfc3339_seconds(seconds)
    return base + fraction + zone


@lru_cache(maxsize=4096)  # files of one listing mostly share a few seconds
def _rfc3339_seconds(seconds: int) -> tuple[str, str]:
    local = time.localtime(seconds)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return base, zone


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=256)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def file_entry(path: str, st: os.stat_result, owner_st: os.stat_result | None = None, name: str = "") -> dict[str, Any]:
    """A `File`: `st` gives mode, size and time; `owner_st` (default `st`) the owner;
    `name` the last part of `path` when the caller has it (a listing)."""
    owner_st = owner_st or st
    return {
        "path": path,
        "name": name or os.path.basename(path.rstrip("/")) or "/",
        "permissions": permissions(st.st_mode),
        "size": st.st_size,
        "lastModified": rfc3339_nano(st.st_mtime_ns),
        "owner": user_name(owner_st.st_uid),
        "group": group_name(owner_st.st_gid),
    }


def sort_key(name: str) -> bytes:
    """Entries sort bytewise by name, as Go's os.ReadDir."""
    return os.fsencode(name)


def sorted_entries(entries: Iterable[os.DirEntry]) -> list[os.DirEntry]:
    """`entries` in Go's order (bytewise by name). Code point order is UTF-8 byte order,
    so plain string order is that order unless a name holds undecodable bytes
    (surrogate escapes): one C-speed encode of all names tells."""
    listed = sorted(entries, key=lambda e: e.name)
    try:
        "".join(e.name for e in listed).encode("utf-8")
    except UnicodeEncodeError:
        listed.sort(key=lambda e: sort_key(e.name))
    return listed
