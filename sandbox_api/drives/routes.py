"""HTTP adapter of the drives service: /drives/mount."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..http.prefix_routes import TAIL, PrefixRouter
from ..http.responses import field, json_response, read_json_object
from .service import Drives, MountRequest

DRIVES = web.AppKey("drives", Drives)


def _id(data: dict[str, Any], key: str) -> str:
    """uidMap/gidMap: a string in the contract; a JSON number is taken as well."""
    value = field(data, key, (str, int), "")
    return str(value)


async def list_mounts(request: web.Request) -> web.Response:
    mounts = await request.app[DRIVES].list()
    return json_response({"mounts": [m.to_dict() for m in mounts]})


async def mount(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    drive = await request.app[DRIVES].mount(
        MountRequest(
            drive_name=field(data, "driveName", str, ""),
            mount_path=field(data, "mountPath", str, ""),
            drive_path=field(data, "drivePath", str, ""),
            read_only=field(data, "readOnly", bool, False),
            uid_map=_id(data, "uidMap"),
            gid_map=_id(data, "gidMap"),
        )
    )
    body = drive.to_dict()
    body.setdefault("uidMap", "")
    body.setdefault("gidMap", "")
    return json_response({"success": True, "message": "Drive mounted successfully", **body})


async def unmount(request: web.Request) -> web.Response:
    # The mount path is absolute whatever its spelling (`mnt%2Fdata` from the SDKs,
    # `/mnt/data`, `//mnt/data`): unlike file paths, nothing here is relative to
    # WORKDIR, so the service only needs the decoded tail the prefix router found.
    path = await request.app[DRIVES].unmount(request[TAIL])
    return json_response({"success": True, "message": "Drive unmounted successfully", "mountPath": path})


def add_routes(app: web.Application, prefixes: PrefixRouter) -> None:
    app.router.add_get("/drives/mount", list_mounts, allow_head=False)
    app.router.add_post("/drives/mount", mount)
    # On the decoded path: `/drives/mount/mnt%2Fdata` must reach the handler.
    prefixes.add("DELETE", "/drives/mount", unmount)
