"""The official Python SDK (`blaxel`, pinned) drives the filesystem API unchanged."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from blaxel.core.sandbox.types import ResponseError


@pytest.fixture
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sdkfs") / uuid.uuid4().hex[:8]
    return path


async def test_write_read_ls_mkdir_rm(sandbox, base):
    await sandbox.fs.mkdir(str(base / "dir"))
    await sandbox.fs.write(str(base / "dir" / "hello.txt"), "hello from sdk\nunicode: é €")
    assert await sandbox.fs.read(str(base / "dir" / "hello.txt")) == "hello from sdk\nunicode: é €"
    listing = await sandbox.fs.ls(str(base / "dir"))
    assert [f.name for f in listing.files] == ["hello.txt"]
    assert listing.files[0].path == str(base / "dir" / "hello.txt")
    await sandbox.fs.mkdir(str(base / "dir" / "sub"))
    listing = await sandbox.fs.ls(str(base / "dir"))
    assert [d.name for d in listing.subdirectories] == ["sub"]
    with pytest.raises(ResponseError) as info:
        await sandbox.fs.rm(str(base / "dir"))
    assert info.value.status == 422
    await sandbox.fs.rm(str(base / "dir"), recursive=True)
    with pytest.raises(ResponseError) as info:
        await sandbox.fs.read(str(base / "dir" / "hello.txt"))
    assert info.value.status == 404


async def test_binary_round_trip(sandbox, base):
    payload = bytes(range(256)) * 100 + b"\x00\xff"
    await sandbox.fs.write_binary(str(base / "blob.bin"), payload)
    assert await sandbox.fs.read_binary(str(base / "blob.bin")) == payload
    assert (base / "blob.bin").read_bytes() == payload


async def test_large_write_goes_through_multipart_upload(sandbox, base, sdk_daemon):
    content = "".join(f"line of text {i:07d}\n" for i in range(330_000))  # ~7 MiB > 5 MiB
    assert len(content.encode()) > 5 * 1024 * 1024
    await sandbox.fs.write(str(base / "large.txt"), content)
    assert hashlib.sha256((base / "large.txt").read_bytes()).hexdigest() == hashlib.sha256(content.encode()).hexdigest()
    assert f"POST /filesystem-multipart/initiate/{base}/large.txt 200" in sdk_daemon.log()
    blob = os.urandom(6 * 1024 * 1024 + 123)
    await sandbox.fs.write_binary(str(base / "large.bin"), blob)
    assert await sandbox.fs.read_binary(str(base / "large.bin")) == blob


async def test_write_tree_and_read_tree(sandbox, base):
    await sandbox.fs.write_tree(
        [{"path": "src/main.py", "content": "print('hi')"}, {"path": "README.md", "content": "# App"}],
        str(base / "app"),
    )
    assert (base / "app" / "src" / "main.py").read_text() == "print('hi')"
    tree = await sandbox.fs.read_tree(str(base / "app"))
    contents = {f.path: f.content for f in tree.files}
    assert contents == {str(base / "app" / "src" / "main.py"): "print('hi')", str(base / "app" / "README.md"): "# App"}
    only_py = await sandbox.fs.read_tree(str(base / "app"), patterns=["*.py"])
    assert [f.name for f in only_py.files] == ["main.py"]


async def test_cp_no_overwrite(sandbox, base):
    await sandbox.fs.write(str(base / "src.txt"), "source")
    result = await sandbox.fs.cp(str(base / "src.txt"), str(base / "dst.txt"), no_overwrite=True)
    assert result.destination == str(base / "dst.txt")
    assert (base / "dst.txt").read_text() == "source"
    (base / "dst.txt").write_text("kept")
    with pytest.raises(FileExistsError):
        await sandbox.fs.cp(str(base / "src.txt"), str(base / "dst.txt"), no_overwrite=True)
    assert (base / "dst.txt").read_text() == "kept"


async def test_plain_cp_uses_the_process_api(sandbox, base):
    await sandbox.fs.write(str(base / "d" / "f.txt"), "x")
    await sandbox.fs.cp(str(base / "d"), str(base / "e"))
    assert (base / "e" / "f.txt").read_text() == "x"


async def test_one_hundred_parallel_reads(sandbox, base):
    content = "x" * (200 * 1024)
    await sandbox.fs.write(str(base / "shared.txt"), content)
    results = await asyncio.gather(*(sandbox.fs.read(str(base / "shared.txt")) for _ in range(100)))
    assert all(r == content for r in results)


async def test_relative_paths_use_the_working_directory(sandbox, sdk_daemon):
    name = f"rel-{uuid.uuid4().hex[:6]}.txt"
    await sandbox.fs.write(name, "relative")
    assert (sdk_daemon.workdir / name).read_text() == "relative"
    assert await sandbox.fs.read(name) == "relative"


async def test_a_large_text_read_streams_to_the_sdk(sandbox, base):
    # Past 256 KiB the JSON read is streamed (chunked): the SDK gets the same text.
    base.mkdir(parents=True)
    text = 'é€😀 "q" \\ \t\x01\n' * 200_000
    (base / "large.txt").write_bytes(text.encode() + b"\xe2\x82")  # a cut sequence: one U+FFFD per byte
    assert await sandbox.fs.read(str(base / "large.txt")) == text + "\ufffd\ufffd"
