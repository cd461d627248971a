"""HTTP adapter of the drives service: /drives/mount."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..http import operations
from ..http.operations import Failure, Media, Operation, Param
from ..http.prefix_routes import TAIL, PrefixRouter
from ..http.responses import json_response
from ..lazy import OnFirstUse
from .wire import DriveListResponse, DriveMountRequest, DriveMountResponse, DriveUnmountResponse

if TYPE_CHECKING:
    from .service import Drives

DRIVES: web.AppKey[OnFirstUse[Drives]] = web.AppKey("drives")  # built on the first call


async def list_mounts(request: web.Request) -> web.Response:
    mounts = await request.app[DRIVES]().list()
    return json_response({"mounts": [m.to_dict() for m in mounts]})


async def mount(request: web.Request) -> web.Response:
    body = await operations.body(request, DriveMountRequest)
    drives = request.app[DRIVES]()
    from .service import MountRequest  # loaded by the DRIVES factory already

    drive = await drives.mount(
        MountRequest(
            drive_name=body.drive_name or "",
            mount_path=body.mount_path or "",
            drive_path=body.drive_path or "",
            read_only=bool(body.read_only),
            uid_map="" if body.uid_map is None else str(body.uid_map),
            gid_map="" if body.gid_map is None else str(body.gid_map),
        )
    )
    reply = drive.to_dict()
    reply.setdefault("uidMap", "")
    reply.setdefault("gidMap", "")
    return json_response({"success": True, "message": "Drive mounted successfully", **reply})


async def unmount(request: web.Request) -> web.Response:
    # The mount path is absolute whatever its spelling (`mnt%2Fdata` from the SDKs,
    # `/mnt/data`, `//mnt/data`): unlike file paths, nothing here is relative to
    # WORKDIR, so the service only needs the decoded tail the prefix router found.
    path = await request.app[DRIVES]().unmount(request[TAIL])
    return json_response({"success": True, "message": "Drive unmounted successfully", "mountPath": path})


BLFS_MISSING = Failure("Blaxel's `blfs` helper (or fusermount/umount) is not installed.")

OPERATIONS = (
    Operation(
        "GET",
        "/drives/mount",
        list_mounts,
        "drives",
        "Mounted drives",
        {200: DriveListResponse, 500: Failure("The mount table cannot be read.")},
    ),
    Operation(
        "POST",
        "/drives/mount",
        mount,
        "drives",
        "Mount a drive",
        {
            200: Media({"application/json": DriveMountResponse}, "Mounted (again: a no-op)."),
            400: Failure("An invalid body (`invalid request body: ...`), name or path."),
            409: Failure("Another mount is at that path."),
            500: Failure("The mount failed (`Failed to mount drive: ...`)."),
            501: BLFS_MISSING,
        },
        description="Mounting the same drive at the same path again is a no-op.",
        body=DriveMountRequest,
    ),
    Operation(
        "DELETE",
        "/drives/mount/{mountPath}",
        unmount,
        "drives",
        "Unmount a drive",
        {
            200: DriveUnmountResponse,
            400: Failure("Empty or invalid path."),
            500: Failure("Not a drive mount point, or the unmount failed (the original's status)."),
            501: BLFS_MISSING,
        },
        params=(Param("mountPath", "The mount point (absolute whatever its spelling: `mnt%2Fdata`, `/mnt/data`)."),),
        # On the decoded path: `/drives/mount/mnt%2Fdata` must reach the handler.
        prefix=True,
    ),
)


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    operations.register(app, OPERATIONS, prefixes)
