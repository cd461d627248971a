"""Drives: mount, list and unmount Blaxel agent drives (FUSE mounts made by `blfs`).

Mounting starts `blfs mount ...` as a long-lived child (it is the FUSE server) and waits
until the kernel shows the mount and it answers. Without the helper (any sandbox
outside Blaxel's images) mounting is answered 501; listing still reads the real mount
table, and unmounting uses `fusermount -u`, falling back to `umount`.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import os
import posixpath
import re
import signal
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from .. import config
from ..config import Settings
from ..errors import Conflict, Internal, Invalid, NotSupported
from ..identity import Identity
from ..linux.children import Children
from .mounts import MOUNTS_FILE, DriveMount, MountEntry, drive_mounts, drive_of, find_mount, read_mounts

log = logging.getLogger("sandbox_api.drives")

DRIVE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")
MAX_DRIVE_NAME = 128
MAX_MOUNT_PATH = 512
MOUNT_TIMEOUT = 30.0
HELPER_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
FILER_PORTS = "49200.49201"  # the filer's HTTP and gRPC ports, in blfs's `-filer` syntax
RESOLV_CONF = "/etc/resolv.conf"


@dataclass(frozen=True)
class MountRequest:
    drive_name: str
    mount_path: str
    drive_path: str = "/"
    read_only: bool = False
    uid_map: str = ""
    gid_map: str = ""


def normalize_mount_path(path: str) -> str:
    """Mount paths are absolute: the leading `/` is added when missing (the SDKs strip it)."""
    return path if not path or path.startswith("/") else "/" + path


def check_mount_path(path: str) -> None:
    if not path:
        raise Invalid("mount path is required")
    if len(path) > MAX_MOUNT_PATH:
        raise Invalid(f"mount path too long (max {MAX_MOUNT_PATH})")
    if ".." in path:
        raise Invalid("mount path must not contain '..'")


def _clean(path: str) -> str:
    return posixpath.normpath(re.sub("/+", "/", path))


def _check_id(value: str, name: str) -> str:
    if not value.isdigit() or not value.isascii():
        raise Invalid(f"invalid {name} {value!r}: must be a non-negative integer")
    return value


def validate(request: MountRequest) -> MountRequest:
    """The request checked and normalized; `Invalid` (400) with the original's messages."""
    if not request.drive_name:
        raise Invalid("drive name is required")
    if len(request.drive_name) > MAX_DRIVE_NAME:
        raise Invalid(f"drive name too long (max {MAX_DRIVE_NAME})")
    if not DRIVE_NAME.fullmatch(request.drive_name):
        raise Invalid("drive name must contain only letters, numbers, hyphens and underscores")
    mount_path = normalize_mount_path(request.mount_path)
    check_mount_path(mount_path)
    drive_path = request.drive_path or "/"
    if not drive_path.startswith("/"):
        raise Invalid("Invalid drive path: Drive path must start with /")
    if drive_path != "/":
        drive_path = drive_path.rstrip("/") or "/"
    if request.uid_map:
        _check_id(request.uid_map, "uidMap")
    if request.gid_map:
        _check_id(request.gid_map, "gidMap")
    return replace(request, mount_path=_clean(mount_path), drive_path=drive_path)


def filer_address(resolv_conf: str = RESOLV_CONF) -> str:
    """The filer serving the drives is the sandbox's first IPv4 nameserver."""
    with open(resolv_conf, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver" and fields[1].count(".") == 3:
                return fields[1]
    raise ValueError(f"no valid nameserver found in {resolv_conf}")


def token_file() -> str:
    domain = "blaxel.dev" if config.get_variable("BL_ENV") == "dev" else "blaxel.ai"
    return f"/var/run/secrets/{domain}/identity/token"


def blfs_argv(
    blfs: str, request: MountRequest, *, filer: str, workspace_id: str, uid_map: str, gid_map: str
) -> list[str]:
    """The `blfs mount` command line, flag for flag as the original daemon builds it
    (blfs is Blaxel's build of SeaweedFS's `weed mount`). Tuning flags come from the
    same BLFS_* variables as there."""
    bucket = f"/buckets/drv-{request.drive_name}-{workspace_id}{request.drive_path}"
    argv = [
        blfs,
        "mount",
        f"-filer={filer}:{FILER_PORTS}",
        "-asyncDio=true",
        "-cacheSymlink=true",
        f"-auth.tokenFile={token_file()}",
        f"-filer.path={bucket}",
        f"-dir={request.mount_path}",
        "-volumeServerAccess=filerProxy",
        "-dirAutoCreate=true",
    ]
    writeback = config.get_variable("BLFS_DISABLE_WRITEBACK_CACHE") != "true"
    argv.append(f"-writebackCache={'true' if writeback else 'false'}")
    if config.get_variable("BLFS_READ_DIRECT_IO") == "true":
        argv.append("-readDirectIO=true")
    if config.get_variable("BLFS_EVICT_PAGE_CACHE_ON_CLOSE") == "true":
        argv.append("-evictPageCacheOnClose=true")
    if request.read_only:
        argv.append("-readOnly=true")
    if uid_map:
        argv.append(f"-map.uid={uid_map}:0")
    if gid_map:
        argv.append(f"-map.gid={gid_map}:0")
    return argv


class Drives:
    def __init__(
        self,
        settings: Settings,
        children: Children,
        *,
        mount_timeout: float = MOUNT_TIMEOUT,
        resolv_conf: str = RESOLV_CONF,
        mounts_file: str = MOUNTS_FILE,
    ) -> None:
        self.blfs = settings.blfs_path
        self.identity: Identity | None = settings.identity
        self.logs_dir = settings.state_dir / "drives"
        self.children = children
        self.mount_timeout = mount_timeout
        self.resolv_conf = resolv_conf
        self.mounts_file = mounts_file
        # One operation at a time per mount path (two blfs on one path fight over its
        # cache locks). One lock per path ever used: few, and small.
        self._locks: dict[str, asyncio.Lock] = {}
        # The uid/gid maps of the mounts made here: the mount table does not show them.
        self._maps: dict[str, tuple[str, str]] = {}

    async def list(self) -> builtins.list[DriveMount]:
        entries = await self._mounts()
        found = drive_mounts(entries, _workspace_id())
        return [self._with_maps(d) for d in found]

    async def mount(self, request: MountRequest) -> DriveMount:
        request = validate(request)
        path = request.mount_path
        async with self._locks.setdefault(path, asyncio.Lock()):
            existing = find_mount(await self._mounts(), path)
            if existing is not None:
                return self._same_drive(existing, request)
            if not os.access(self.blfs, os.X_OK):
                raise NotSupported(f"drive mounting needs {self.blfs}, which is not installed in this sandbox")
            workspace_id = _workspace_id()
            if not workspace_id:
                raise Internal("Failed to mount drive: BL_WORKSPACE_ID environment variable not set")
            try:
                filer = await asyncio.to_thread(filer_address, self.resolv_conf)
                uid_map = self._id_map(
                    request.uid_map, "BLFS_UID_MAP", "uidMap", self.identity.uid if self.identity else None
                )
                gid_map = self._id_map(
                    request.gid_map, "BLFS_GID_MAP", "gidMap", self.identity.gid if self.identity else None
                )
                await asyncio.to_thread(self._make_mount_point, path)
            except (OSError, ValueError) as e:
                raise Internal(f"Failed to mount drive: {e}") from None
            argv = blfs_argv(
                self.blfs, request, filer=filer, workspace_id=workspace_id, uid_map=uid_map, gid_map=gid_map
            )
            log.info("mounting drive %s at %s (drive path %s)", request.drive_name, path, request.drive_path)
            await self._run_blfs(argv, path)
            self._maps[path] = (uid_map, gid_map)
            log.info("drive %s mounted at %s", request.drive_name, path)
            return DriveMount(request.drive_name, path, request.drive_path, request.read_only, uid_map, gid_map)

    async def unmount(self, mount_path: str) -> str:
        """Unmount the drive at `mount_path`; returns the path unmounted."""
        mount_path = normalize_mount_path(mount_path.lstrip("/"))
        check_mount_path(mount_path)
        path = _clean(mount_path)
        async with self._locks.setdefault(path, asyncio.Lock()):
            entry = find_mount(await self._mounts(), path)
            if entry is None:
                if not await asyncio.to_thread(os.path.lexists, path):
                    raise Internal(f"Failed to unmount drive: mount path does not exist: {path}")
                raise Internal(f"Failed to unmount drive: path is not a mount point: {path}")
            if not entry.is_drive:
                # What the list shows is what can be unmounted: not /proc, not the root.
                raise Internal(f"Failed to unmount drive: {path} is not a drive mount ({entry.fs_type})")
            helpers = [
                p for p in (config.find_program("fusermount", "fusermount3"), config.find_program("umount")) if p
            ]
            if not helpers:
                raise NotSupported(
                    "unmounting a drive needs fusermount or umount, and neither is installed in this sandbox"
                )
            failures = []
            for helper in helpers:
                argv = [helper, "-u", path] if "fusermount" in os.path.basename(helper) else [helper, path]
                error = await self._run_helper(argv)
                if error is None and await self._wait_unmounted(path):
                    self._maps.pop(path, None)
                    log.info("drive unmounted from %s", path)
                    return path
                failures.append(error or f"{os.path.basename(helper)}: timeout waiting for unmount to complete")
            raise Internal(f"Failed to unmount drive: {'; '.join(failures)}")

    # --- helpers ------------------------------------------------------------------

    async def _mounts(self) -> builtins.list[MountEntry]:
        try:
            return await asyncio.to_thread(read_mounts, self.mounts_file)
        except OSError as e:
            raise Internal(f"Failed to list mounts: {e}") from None

    def _with_maps(self, drive: DriveMount) -> DriveMount:
        maps = self._maps.get(drive.mount_path)
        return replace(drive, uid_map=maps[0], gid_map=maps[1]) if maps else drive

    def _same_drive(self, entry: MountEntry, request: MountRequest) -> DriveMount:
        """Mounting again what is already there is a no-op; anything else there is a conflict."""
        path = request.mount_path
        if not entry.is_drive:
            raise Conflict(
                f"Failed to mount drive: mount path already in use: {path} is occupied by a non-drive mount ({entry.fs_type})"
            )
        drive = drive_of(entry, _workspace_id())
        if drive.drive_name != request.drive_name or drive.drive_path != request.drive_path:
            raise Conflict(
                f"Failed to mount drive: mount path already in use: {drive.drive_name} "
                f"(drivePath={drive.drive_path}) is already mounted at {path}"
            )
        log.info("drive %s already mounted at %s", request.drive_name, path)
        uid_map, gid_map = self._maps.get(path, (request.uid_map, request.gid_map))
        return replace(drive, mount_path=path, uid_map=uid_map, gid_map=gid_map)

    @staticmethod
    def _id_map(requested: str, variable: str, name: str, workload_id: int | None) -> str:
        """The local id mapped to the filer's 0: the request's, else $variable, else the
        workload user's (which makes the drive writable by the processes), else none."""
        value = requested or config.get_variable(variable) or ""
        if not value and workload_id:
            value = str(workload_id)
        if value and not (value.isascii() and value.isdigit()):
            raise ValueError(f"invalid {name} {value!r}: must be a non-negative integer")
        return value

    def _make_mount_point(self, path: str) -> None:
        """Create the mount point; one created here is handed to the workload user (never
        an existing directory: re-owning e.g. /usr/local/bin would be an escalation)."""
        if os.path.isdir(path):
            return
        os.makedirs(path, 0o755, exist_ok=True)
        if self.identity is not None:
            try:
                os.chown(path, self.identity.uid, self.identity.gid)
            except OSError as e:
                log.warning("could not hand mount point %s to the workload user: %s", path, e)

    def _log_path(self, mount_path: str) -> Path:
        digest = hashlib.sha1(mount_path.encode()).hexdigest()[:12]
        return self.logs_dir / f"blfs-{digest}.log"

    async def _run_blfs(self, argv: builtins.list[str], path: str) -> None:
        """Start blfs and wait until the mount serves. blfs stays our child, in its own
        session (a signal to the daemon's group must not take the drive down), its
        output in a log file under the state directory (it outlives any request)."""
        log_path = self._log_path(path)
        try:
            log_file = await asyncio.to_thread(_open_log, log_path)
            try:
                offset = log_file.tell()
                child = self.children.spawn(
                    argv,
                    cwd="/",
                    env=config.child_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    close_fds=True,
                    start_new_session=True,
                )
            finally:
                log_file.close()
        except OSError as e:
            raise Internal(f"Failed to mount drive: failed to start blfs mount: {e}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.mount_timeout
        while True:
            code = child.returncode
            if code == 0:
                # A helper that exits 0 has daemonized (the mount-helper convention):
                # its server runs on, detached from us.
                return
            if code is not None:
                output = await asyncio.to_thread(_tail, log_path, offset)
                raise Internal(
                    f"Failed to mount drive: blfs mount process exited unexpectedly with code {code}{output}"
                )
            if find_mount(await self._mounts(), path) is not None and await _answers(path):
                return
            if loop.time() > deadline:
                break
            await asyncio.sleep(POLL_INTERVAL)
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await child.wait()
        if find_mount(await self._mounts(), path) is not None:
            helper = config.find_program("fusermount", "fusermount3")
            if helper:
                await self._run_helper([helper, "-u", path])
        raise Internal(
            f"Failed to mount drive: timeout waiting for mount point to be ready after {self.mount_timeout:g}s"
        )

    async def _run_helper(self, argv: builtins.list[str]) -> str | None:
        """Run `argv`; None when it succeeded, else what went wrong."""
        name = os.path.basename(argv[0])
        try:
            done = await self.children.run(argv, timeout=HELPER_TIMEOUT, env=config.child_environment())
        except OSError as e:
            return f"{name} failed: {e}"
        except TimeoutError:
            return f"{name} timed out after {HELPER_TIMEOUT:g}s"
        if done.returncode != 0:
            return f"{name} failed with code {done.returncode}: {done.output()}"
        return None

    async def _wait_unmounted(self, path: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HELPER_TIMEOUT
        while find_mount(await self._mounts(), path) is not None:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL)
        return True


def _workspace_id() -> str:
    return (config.get_variable("BL_WORKSPACE_ID") or "").strip().lower()


def _open_log(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")


def _tail(path: Path, offset: int, limit: int = 2000) -> str:
    """The end of what blfs wrote in this run, for the error reply."""
    try:
        with open(path, "rb") as f:
            f.seek(max(offset, f.seek(0, os.SEEK_END) - limit))
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f": {text}" if text else ""


async def _answers(path: str) -> bool:
    """Whether the FUSE server answers: the mount shows in the table before it serves."""
    try:
        await asyncio.wait_for(asyncio.to_thread(os.listdir, path), 2.0)
    except (OSError, TimeoutError):
        return False
    return True
