"""The drives endpoints' wire shapes (see contract.py)."""

from __future__ import annotations

from typing import Annotated

from ..contract import Shape, doc

IdMap = Annotated[
    str | int | None,
    doc("A numeric id the drive's files show as owned by (a string in the contract; a JSON number is taken too)."),
]


class DriveMountRequest(Shape):
    # driveName and mountPath are required, but checked by the service, in the original's words
    # (`drive name is required`), not the shape's.
    drive_name: Annotated[
        str | None, doc("Required: letters, digits, `-` and `_` (not first), at most 128 characters.")
    ] = None
    mount_path: Annotated[
        str | None, doc("Required: where to mount it, absolute (a missing leading `/` is added); at most 512.")
    ] = None
    drive_path: Annotated[str | None, doc("The directory inside the drive (default `/`).")] = None
    read_only: bool | None = None
    uid_map: IdMap = None
    gid_map: IdMap = None


class DriveMount(Shape):
    drive_name: str
    mount_path: str
    drive_path: str
    read_only: bool
    uid_map: str | None = None
    gid_map: str | None = None


class DriveListResponse(Shape, omit_defaults=False):
    mounts: list[DriveMount]


class DriveMountResponse(Shape, omit_defaults=False):
    success: bool
    message: str
    drive_name: str
    mount_path: str
    drive_path: str
    read_only: bool
    uid_map: Annotated[str, doc('`""` when not mapped.')]
    gid_map: Annotated[str, doc('`""` when not mapped.')]


class DriveUnmountResponse(Shape, omit_defaults=False):
    success: bool
    message: str
    mount_path: str
