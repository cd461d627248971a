"""A full disk during an upload, in a real daemon whose WORKDIR is a small tmpfs (and
whose upload staging is another): every way of writing a file answers 507 with a
JSON error, the file it would have replaced is intact byte for byte, nothing is left
behind, not even an unnamed temp file still holding blocks (the free space comes back
to the byte), and the daemon recovers once space is freed.

tests/filesystem/test_uploads.py covers the basic 507 of each route in-process; this
adds overwrites of an existing file through each route, relative paths under a
WORKDIR that is full, chunked bodies, the staging disk being full, free space, and
retrying a completion that failed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Daemon

from .support import files_under, form_body, free_bytes, snapshot, temp_like, tmpfs

MIB = 1 << 20


def fingerprint(path: Path) -> tuple[bytes, int, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).digest(), st.st_ino, stat.S_IMODE(st.st_mode), st.st_size


async def expect_507(resp: aiohttp.ClientResponse) -> None:
    assert resp.status == 507, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/json")
    body = await resp.json()
    assert list(body) == ["error"] and "no space left on device" in body["error"], body


async def space_is_back(mount: Path, before: int, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while free_bytes(mount) != before and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert free_bytes(mount) == before, f"{before - free_bytes(mount)} bytes still held after a failed upload"


async def chunks(total: int, size: int = 256 * 1024):
    block = os.urandom(size)
    for _ in range(total // size):
        yield block


@pytest.mark.timeout(90)
async def test_full_disk_507_keeps_the_old_file_and_frees_every_block(tmp_path):
    with tmpfs(tmp_path / "work", "6m") as work, tmpfs(tmp_path / "staging", "8m") as staging:
        keep = work / "keep.bin"
        keep.write_bytes(os.urandom(MIB))
        keep.chmod(0o640)
        filler = work / "filler"
        filler.write_bytes(b"\0" * (4 * MIB))  # about 1 MiB stays free
        daemon = Daemon(staging, work)
        daemon.start()
        try:
            async with aiohttp.ClientSession(daemon.url) as session:
                await _run(session, daemon, work, staging, keep, filler)
        finally:
            daemon.stop()


async def _run(
    session: aiohttp.ClientSession, daemon: Daemon, work: Path, staging: Path, keep: Path, filler: Path
) -> None:
    original = fingerprint(keep)
    listing = sorted(os.listdir(work))
    free = free_bytes(work)
    files_held = [t for t in snapshot(daemon.proc.pid).fd_targets if not t.startswith("socket:")]
    octet = {"Content-Type": "application/octet-stream"}
    big = os.urandom(3 * MIB)

    async def check_untouched(what: str) -> None:
        assert fingerprint(keep) == original, f"{what}: the old file changed"
        assert sorted(os.listdir(work)) == listing, f"{what}: {sorted(os.listdir(work))}"
        await space_is_back(work, free)

    # Relative paths (under the full WORKDIR), every way of writing a file.
    await expect_507(await session.put("/filesystem/keep.bin", data=big, headers=octet))
    await check_untouched("streamed PUT")
    await expect_507(await session.put("/filesystem/keep.bin", data=chunks(3 * MIB), headers=octet))
    await check_untouched("chunked streamed PUT")
    await expect_507(await session.put("/filesystem/keep.bin", json={"content": "é" * (MIB + MIB // 2)}))
    await check_untouched("JSON PUT")
    await expect_507(await session.put("/filesystem/keep.bin", data=form_body(big)))
    await check_untouched("form PUT")
    await expect_507(await session.put("/filesystem/new/dir/file.bin", data=big, headers=octet))
    assert not (work / "new" / "dir" / "file.bin").exists()
    (work / "new" / "dir").rmdir()  # parents are made first (mkdir -p): they may stay
    (work / "new").rmdir()
    await check_untouched("streamed PUT to a new path")

    # Multipart: the parts are staged elsewhere; the completion is what fills the disk.
    resp = await session.post("/filesystem-multipart/initiate/keep.bin", json={})
    upload_id = (await resp.json())["uploadId"]
    pieces = [big[: 2 * MIB], big[2 * MIB :]]
    etags = []
    for number, piece in enumerate(pieces, 1):
        async with session.put(
            f"/filesystem-multipart/{upload_id}/part?partNumber={number}", data=form_body(piece)
        ) as resp:
            assert resp.status == 200
            etags.append((await resp.json())["etag"])
    parts = [{"partNumber": n, "etag": e} for n, e in enumerate(etags, 1)]
    await expect_507(await session.post(f"/filesystem-multipart/{upload_id}/complete", json={"parts": parts}))
    await check_untouched("multipart completion")

    # The staging disk full: a part is refused and its temp file removed.
    staged_free = free_bytes(staging)
    stuffing = staging / "stuffing"
    stuffing.write_bytes(b"\0" * (staged_free - 256 * 1024))
    before = free_bytes(staging)
    await expect_507(await session.put(f"/filesystem-multipart/{upload_id}/part?partNumber=3", data=form_body(big)))
    await space_is_back(staging, before)
    assert temp_like(files_under(staging / "uploads")) == []
    stuffing.unlink()

    # Space freed: the same completion now succeeds, and the daemon holds no extra fd.
    filler.unlink()
    async with session.post(f"/filesystem-multipart/{upload_id}/complete", json={"parts": parts}) as resp:
        assert resp.status == 200, await resp.text()
    assert hashlib.sha256(keep.read_bytes()).digest() == hashlib.sha256(big).digest()
    assert stat.S_IMODE(keep.stat().st_mode) == 0o640  # an overwrite keeps the mode
    assert sorted(os.listdir(work)) == ["keep.bin"]
    async with session.get("/health") as resp:
        assert resp.status == 200
    assert [t for t in snapshot(daemon.proc.pid).fd_targets if not t.startswith("socket:")] == files_held
