"""The drive mounts of this machine, read from the kernel's mount table.

A Blaxel drive is a FUSE mount made by `blfs` (a SeaweedFS mount): its type is
`fuse.blfs` or `fuse.seaweedfs` and its source names the bucket, as in
`172.16.37.66:8080:/buckets/drv-<driveName>-<workspaceId>/<drivePath>`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

MOUNTS_FILE = "/proc/self/mounts"
DRIVE_FS_TYPES = frozenset({"fuse.blfs", "fuse.seaweedfs"})
BUCKETS = "/buckets/"

# The kernel escapes space, tab, newline and backslash in mount table fields as \ooo.
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mounts."""

    source: str
    mount_point: str
    fs_type: str
    options: tuple[str, ...]

    @property
    def is_drive(self) -> bool:
        return self.fs_type in DRIVE_FS_TYPES


@dataclass(frozen=True)
class DriveMount:
    drive_name: str
    mount_path: str
    drive_path: str
    read_only: bool
    # The local uid/gid mapped to the filer's 0; None when not known (a mount this
    # daemon did not make: the kernel's table does not show it).
    uid_map: str | None = None
    gid_map: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "driveName": self.drive_name,
            "mountPath": self.mount_path,
            "drivePath": self.drive_path,
            "readOnly": self.read_only,
        }
        if self.uid_map is not None:
            data["uidMap"] = self.uid_map
        if self.gid_map is not None:
            data["gidMap"] = self.gid_map
        return data


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        source, mount_point, fs_type, options = (_unescape(f) for f in fields[:4])
        entries.append(MountEntry(source, mount_point, fs_type, tuple(options.split(","))))
    return entries


def read_mounts(path: str = MOUNTS_FILE) -> list[MountEntry]:
    """The mount table (blocking: call from a worker thread)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_mounts(f.read())


def find_mount(entries: list[MountEntry], mount_path: str) -> MountEntry | None:
    """The mount on top at `mount_path` (the last one listed), if any."""
    wanted = posixpath.normpath(mount_path)
    found = None
    for entry in entries:
        if posixpath.normpath(entry.mount_point) == wanted:
            found = entry
    return found


def drive_name_of(bucket: str, workspace_id: str) -> str:
    """`drv-<driveName>-<workspaceId>` -> driveName. Without the workspace id, the last
    `-segment` is taken for it (every bucket blfs mounts for a sandbox has one)."""
    if not bucket.startswith("drv-"):
        return bucket
    name = bucket[len("drv-") :]
    if workspace_id:
        suffix = "-" + workspace_id.lower()
        return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name
    head, sep, _ = name.rpartition("-")
    return head if sep and head else name


def drive_of(entry: MountEntry, workspace_id: str = "") -> DriveMount:
    """What can be read of a drive from its mount entry: name and subpath from the
    bucket path when the source has one, read-only from the options."""
    drive_name, drive_path = "", "/"
    at = entry.source.find(BUCKETS)
    if at == 0 or (at > 0 and entry.source[at - 1] == ":"):
        bucket, _, sub = entry.source[at + len(BUCKETS) :].rstrip("/").partition("/")
        drive_name = drive_name_of(bucket, workspace_id)
        drive_path = "/" + sub if sub else "/"
    return DriveMount(
        drive_name=drive_name,
        mount_path=entry.mount_point,
        drive_path=drive_path,
        read_only="ro" in entry.options,
    )


def drive_mounts(entries: list[MountEntry], workspace_id: str = "") -> list[DriveMount]:
    return [drive_of(e, workspace_id) for e in entries if e.is_drive]
