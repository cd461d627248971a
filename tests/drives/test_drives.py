"""Drives: the real mount table, validation, a fake `blfs` for the mount itself, unmount."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from sandbox_api.drives.mounts import DriveMount, drive_mounts, parse_mounts
from sandbox_api.drives.routes import DRIVES

DEFAULT_BLFS = "/usr/local/bin/blfs"


def fake_program(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def blfs(tmp_path: Path) -> Path:
    """Where the drives client looks for blfs (absent unless a test writes it)."""
    return tmp_path / "bin" / "blfs"


@pytest_asyncio.fixture
async def drives(settings, blfs: Path, tmp_path: Path, monkeypatch):
    """The app with blfs at `blfs`, a resolv.conf of ours, a clean drive environment."""
    blfs.parent.mkdir()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# generated\nnameserver fe80::1\nnameserver 10.1.2.3\nnameserver 10.9.9.9\n")
    for name in (
        "BL_ENV",
        "BLFS_UID_MAP",
        "BLFS_GID_MAP",
        "BLFS_DISABLE_WRITEBACK_CACHE",
        "BLFS_READ_DIRECT_IO",
        "BLFS_EVICT_PAGE_CACHE_ON_CLOSE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BL_WORKSPACE_ID", "WS1")
    app = build_app(replace(settings, blfs_path=str(blfs), identity=None))
    app[DRIVES]().resolv_conf = str(resolv)
    async with TestClient(TestServer(app)) as c:
        yield c


async def post_mount(client, **body):
    resp = await client.post("/drives/mount", json=body)
    return resp.status, await resp.json()


# --- list --------------------------------------------------------------------------


async def test_list_reads_the_real_mount_table(client):
    resp = await client.get("/drives/mount")
    assert resp.status == 200
    assert await resp.json() == {"mounts": []}


MOUNT_TABLE = r"""proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/vda / ext4 rw,relatime,discard 0 0
172.16.37.66:8080:/buckets/drv-my-super-drive-hydpwa/ /mnt/test fuse.seaweedfs rw,nosuid,nodev,relatime,user_id=0,group_id=0 0 0
10.0.0.2:49200.49201:/buckets/drv-data-hydpwa/sub/dir /mnt/with\040space fuse.blfs ro,nosuid,nodev,relatime,user_id=0,group_id=0 0 0
blfs /mnt/plain fuse.blfs rw,relatime 0 0
sshfs#me@host:/buckets/x /mnt/other fuse.sshfs rw 0 0
"""


def test_parser_keeps_drive_mounts_and_reads_what_it_can():
    found = drive_mounts(parse_mounts(MOUNT_TABLE), workspace_id="HYDPWA")
    assert found == [
        DriveMount("my-super-drive", "/mnt/test", "/", False),
        DriveMount("data", "/mnt/with space", "/sub/dir", True),
        DriveMount("", "/mnt/plain", "/", False),  # no bucket path in the source
    ]
    assert found[1].to_dict() == {
        "driveName": "data",
        "mountPath": "/mnt/with space",
        "drivePath": "/sub/dir",
        "readOnly": True,
    }


def test_parser_without_workspace_id_drops_the_last_segment():
    names = [d.drive_name for d in drive_mounts(parse_mounts(MOUNT_TABLE))]
    assert names == ["my-super-drive", "data", ""]


# --- mount: validation, 501, 409 ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"mountPath": "/mnt/x"}, "drive name is required"),
        ({"driveName": "data"}, "mount path is required"),
        (
            {"driveName": "bad name!", "mountPath": "/mnt/x"},
            "drive name must contain only letters, numbers, hyphens and underscores",
        ),
        (
            {"driveName": "-data", "mountPath": "/mnt/x"},
            "drive name must contain only letters, numbers, hyphens and underscores",
        ),
        ({"driveName": "d" * 129, "mountPath": "/mnt/x"}, "drive name too long (max 128)"),
        ({"driveName": "data", "mountPath": "/mnt/../etc"}, "mount path must not contain '..'"),
        ({"driveName": "data", "mountPath": "/" + "m" * 512}, "mount path too long (max 512)"),
        (
            {"driveName": "data", "mountPath": "/mnt/x", "drivePath": "sub"},
            "Invalid drive path: Drive path must start with /",
        ),
        (
            {"driveName": "data", "mountPath": "/mnt/x", "uidMap": "-1"},
            "invalid uidMap '-1': must be a non-negative integer",
        ),
        (
            {"driveName": 7, "mountPath": "/mnt/x"},
            "invalid request body: field driveName must be a string, got a number",
        ),
    ],
)
async def test_mount_validation_is_400(drives, body, error):
    assert await post_mount(drives, **body) == (400, {"error": error})


async def test_mount_with_no_body_is_400(drives):
    resp = await drives.post("/drives/mount")
    assert resp.status == 400 and await resp.json() == {"error": "invalid request body: EOF"}


async def test_mount_path_gets_its_leading_slash_before_the_length_check(drives):
    status, body = await post_mount(drives, driveName="data", mountPath="m" * 512)
    assert (status, body) == (400, {"error": "mount path too long (max 512)"})


async def test_mount_without_blfs_is_501(settings):
    if os.path.exists(DEFAULT_BLFS):
        pytest.skip("blfs is installed here")
    async with TestClient(TestServer(build_app(replace(settings, blfs_path=DEFAULT_BLFS)))) as client:
        status, body = await post_mount(client, driveName="data", mountPath="/mnt/data")
    assert status == 501
    assert body == {"error": "drive mounting needs /usr/local/bin/blfs, which is not installed in this sandbox"}
    assert not os.path.exists("/mnt/data")  # nothing done before the check


async def test_mount_over_another_mount_is_409(drives):
    status, body = await post_mount(drives, driveName="data", mountPath="/proc")
    assert status == 409
    assert body == {
        "error": "Failed to mount drive: mount path already in use: /proc is occupied by a non-drive mount (proc)"
    }


# --- mount with a fake blfs --------------------------------------------------------


async def test_mount_runs_blfs_and_replies_with_the_mount(drives, blfs, tmp_path):
    argv_file = tmp_path / "argv"
    fake_program(blfs, f'printf "%s\\n" "$@" > {argv_file}\nexit 0\n')
    mount_point = tmp_path / "mnt" / "data"
    status, body = await post_mount(
        drives, driveName="data", mountPath=str(mount_point)[1:], drivePath="/sub/", readOnly=True, uidMap="1000"
    )
    assert (status, body) == (
        200,
        {
            "success": True,
            "message": "Drive mounted successfully",
            "driveName": "data",
            "mountPath": str(mount_point),
            "drivePath": "/sub",
            "readOnly": True,
            "uidMap": "1000",
            "gidMap": "",
        },
    )
    assert argv_file.read_text().splitlines() == [
        "mount",
        "-filer=10.1.2.3:49200.49201",
        "-asyncDio=true",
        "-cacheSymlink=true",
        "-auth.tokenFile=/var/run/secrets/blaxel.ai/identity/token",
        "-filer.path=/buckets/drv-data-ws1/sub",
        f"-dir={mount_point}",
        "-volumeServerAccess=filerProxy",
        "-dirAutoCreate=true",
        "-writebackCache=true",
        "-readOnly=true",
        "-map.uid=1000:0",
    ]
    assert mount_point.is_dir()


async def test_mount_tuning_comes_from_the_blfs_variables(drives, blfs, tmp_path, monkeypatch):
    argv_file = tmp_path / "argv"
    fake_program(blfs, f'printf "%s\\n" "$@" > {argv_file}\n')
    monkeypatch.setenv("BL_ENV", "dev")
    monkeypatch.setenv("BLFS_DISABLE_WRITEBACK_CACHE", "true")
    monkeypatch.setenv("BLFS_GID_MAP", "50")
    status, body = await post_mount(drives, driveName="data", mountPath=str(tmp_path / "m"))
    assert status == 200 and body["gidMap"] == "50" and body["drivePath"] == "/"
    argv = argv_file.read_text().splitlines()
    assert "-auth.tokenFile=/var/run/secrets/blaxel.dev/identity/token" in argv
    assert "-filer.path=/buckets/drv-data-ws1/" in argv
    assert "-writebackCache=false" in argv and "-map.gid=50:0" in argv and "-readOnly=true" not in argv


async def test_mount_fails_with_what_blfs_said(drives, blfs, tmp_path):
    fake_program(blfs, 'echo "ACL denied for drive" >&2\nexit 3\n')
    status, body = await post_mount(drives, driveName="data", mountPath=str(tmp_path / "m"))
    assert status == 500
    assert body["error"].startswith("Failed to mount drive: blfs mount process exited unexpectedly with code 3")
    assert "ACL denied for drive" in body["error"]


async def test_mount_needs_the_workspace_id(drives, blfs, tmp_path, monkeypatch):
    fake_program(blfs, "exit 0\n")
    monkeypatch.delenv("BL_WORKSPACE_ID")
    status, body = await post_mount(drives, driveName="data", mountPath=str(tmp_path / "m"))
    assert (status, body) == (500, {"error": "Failed to mount drive: BL_WORKSPACE_ID environment variable not set"})


async def test_mount_that_never_appears_times_out_and_stops_blfs(drives, blfs, tmp_path):
    pid_file = tmp_path / "pid"
    fake_program(blfs, f"echo $$ > {pid_file}\nexec sleep 60\n")
    drives.server.app[DRIVES]().mount_timeout = 0.5
    status, body = await post_mount(drives, driveName="data", mountPath=str(tmp_path / "m"))
    assert (status, body) == (
        500,
        {"error": "Failed to mount drive: timeout waiting for mount point to be ready after 0.5s"},
    )
    pid = int(pid_file.read_text())
    for _ in range(50):
        if not os.path.exists(f"/proc/{pid}"):
            break
        await asyncio.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped


# --- unmount -----------------------------------------------------------------------


def unmount_url(path: str) -> str:
    """As the SDKs send it: no leading slash, `/` encoded as %2F."""
    return "/drives/mount/" + quote(path.lstrip("/"), safe="")


async def test_unmount_of_a_directory_that_is_not_mounted_is_500(client, tmp_path):
    resp = await client.delete(unmount_url(str(tmp_path)))
    assert resp.status == 500
    assert await resp.json() == {"error": f"Failed to unmount drive: path is not a mount point: {tmp_path}"}


async def test_unmount_of_a_missing_path_is_500(client, tmp_path):
    resp = await client.delete(unmount_url(str(tmp_path / "nope")))
    assert resp.status == 500
    assert await resp.json() == {"error": f"Failed to unmount drive: mount path does not exist: {tmp_path / 'nope'}"}


async def test_unmount_leaves_mounts_that_are_not_drives_alone(client):
    for url in ("/drives/mount/proc", "/drives/mount//proc", "/drives/mount/%2Fproc/"):
        resp = await client.delete(url)
        assert resp.status == 500
        assert await resp.json() == {"error": "Failed to unmount drive: /proc is not a drive mount (proc)"}


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("/drives/mount", "mount path is required"),
        ("/drives/mount/", "mount path is required"),
        ("/drives/mount/mnt%2F..%2Fetc", "mount path must not contain '..'"),
        ("/drives/mount/" + "m" * 512, "mount path too long (max 512)"),
    ],
)
async def test_unmount_validation_is_400(client, url, error):
    resp = await client.delete(url)
    assert resp.status == 400 and await resp.json() == {"error": error}


# --- against a mount table that has drives -----------------------------------------


@pytest.fixture
def mounted(drives, tmp_path):
    """The drives client reading MOUNT_TABLE as the machine's mount table."""
    table = tmp_path / "mounts"
    table.write_text(MOUNT_TABLE)
    drives.server.app[DRIVES]().mounts_file = str(table)
    return drives


async def test_list_shows_the_drives_of_the_mount_table(mounted, monkeypatch):
    monkeypatch.setenv("BL_WORKSPACE_ID", "hydpwa")
    resp = await mounted.get("/drives/mount")
    assert await resp.json() == {
        "mounts": [
            {"driveName": "my-super-drive", "mountPath": "/mnt/test", "drivePath": "/", "readOnly": False},
            {"driveName": "data", "mountPath": "/mnt/with space", "drivePath": "/sub/dir", "readOnly": True},
            {"driveName": "", "mountPath": "/mnt/plain", "drivePath": "/", "readOnly": False},
        ]
    }


async def test_mounting_the_same_drive_again_is_a_no_op(mounted, monkeypatch):
    monkeypatch.setenv("BL_WORKSPACE_ID", "hydpwa")
    # No blfs here: the reply comes from the mount table alone.
    status, body = await post_mount(mounted, driveName="data", mountPath="/mnt/with space/", drivePath="/sub/dir/")
    assert status == 200
    assert body == {
        "success": True,
        "message": "Drive mounted successfully",
        "driveName": "data",
        "mountPath": "/mnt/with space",
        "drivePath": "/sub/dir",
        "readOnly": True,
        "uidMap": "",
        "gidMap": "",
    }


async def test_mounting_another_drive_where_one_is_mounted_is_409(mounted, monkeypatch):
    monkeypatch.setenv("BL_WORKSPACE_ID", "hydpwa")
    status, body = await post_mount(mounted, driveName="data", mountPath="/mnt/test")
    assert status == 409
    assert body == {
        "error": "Failed to mount drive: mount path already in use: my-super-drive (drivePath=/) is already mounted at /mnt/test"
    }
    status, body = await post_mount(mounted, driveName="data", mountPath="/mnt/with space", drivePath="/other")
    assert status == 409
