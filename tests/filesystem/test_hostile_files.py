"""Files that are not what a read or a write expects: endless devices, FIFOs, sockets,
huge files, symlink loops, escaping tree keys, odd Range headers. Every answer is a
clear 4xx or a correct answer, memory stays bounded, and no node is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sandbox_api.filesystem import reading
from tests.codegen.test_codegen import FakeProvider
from tests.filesystem.conftest import url
from tests.robustness.support import settle, snapshot, tmpfs

MIB = 1024 * 1024
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
DOWNLOAD = {"Accept": "application/octet-stream"}


def node_identity(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_ino, stat.S_IFMT(st.st_mode), st.st_rdev


@pytest.fixture
def nodes(area: Path) -> Iterator[dict[str, Path]]:
    """A FIFO, a unix socket and a character device (the null device's numbers) of the test's own."""
    made = {"fifo": area / "fifo", "socket": area / "sock", "device": area / "null"}
    os.mkfifo(made["fifo"])
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(made["socket"]))
    try:
        os.mknod(made["device"], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        del made["device"]  # no CAP_MKNOD here: the other kinds still run
    try:
        yield made
    finally:
        sock.close()


def go_decode(data: bytes) -> str:
    """Go's lossy UTF-8 decoding, written independently of the daemon's: one U+FFFD per invalid byte."""
    out: list[str] = []
    i = 0
    while i < len(data):
        for width in (1, 2, 3, 4):
            try:
                out.append(data[i : i + width].decode("utf-8"))
            except UnicodeDecodeError:
                continue
            i += width
            break
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


async def mcp_call(client, name: str, arguments: dict) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    resp = await asyncio.wait_for(client.post("/mcp", json=body, headers=MCP_HEADERS), 10)
    assert resp.status == 200
    return (await resp.json())["result"]


# --- 1. reads are bounded -------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
async def test_json_read_of_an_endless_device_is_refused_at_once(client, device):
    started = time.monotonic()
    resp = await asyncio.wait_for(client.get(url(device)), 5)
    assert resp.status == 422
    assert (await resp.json())["error"] == f"error reading file: read {device}: not a regular file (a character device)"
    assert time.monotonic() - started < 2


async def test_json_read_of_fifo_socket_and_device_is_a_4xx_without_hanging(client, nodes):
    for name, path in nodes.items():
        resp = await asyncio.wait_for(client.get(url(path)), 5)
        assert resp.status == 422, name
        assert "not a regular file" in (await resp.json())["error"], name


async def test_downloads_of_devices_and_fifos_stay_as_they_were(client, nodes):
    resp = await asyncio.wait_for(client.get(url("/dev/zero"), headers=DOWNLOAD), 5)
    assert resp.status == 200 and await resp.read() == b""  # a device's size is 0
    resp = await asyncio.wait_for(client.get(url(nodes["fifo"]), headers=DOWNLOAD), 5)
    assert resp.status == 422


async def test_a_streamed_json_read_holds_exactly_the_decoded_text(client, area):
    """Past the one-piece size the JSON is streamed: multi-byte sequences and invalid bytes cut
    between two reads of the file decode exactly as the whole file at once."""
    piece = 256 * 1024
    data = bytearray(('é€😀 ascii "quoted" \\ \t\n\x01' * 40000).encode())
    for boundary in range(piece, len(data), piece):  # every kind of cut at the read boundaries
        data[boundary - 2 : boundary + 2] = b"\xf0\x9f\x98\x80"[: 2 + boundary % 3] + b"\xff\xe2"[: 2 - boundary % 3]
    data += b"\xe2\x82"  # a truncated sequence at the very end
    target = area / "mixed.txt"
    target.write_bytes(bytes(data))
    resp = await client.get(url(target))
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await resp.read()
    payload = json.loads(body)
    assert payload["content"] == go_decode(bytes(data))
    assert list(payload) == ["path", "name", "permissions", "size", "lastModified", "owner", "group", "content"]
    assert payload["size"] == len(data) and payload["name"] == ""


async def test_a_small_json_read_is_still_one_plain_response(client, area):
    target = area / "small.txt"
    target.write_bytes(b"a\xe2\x82b\xff\n")
    resp = await client.get(url(target))
    assert resp.headers["Content-Length"] == str(len(await resp.read()))
    assert (await resp.json())["content"] == "a\ufffd\ufffdb\ufffd\n"


async def _read_counting(
    session: aiohttp.ClientSession, address: str, pid: int, rss: list[float]
) -> tuple[bytes, bytes, int]:
    """Stream a response, keeping its head and tail and the daemon's RSS as it goes."""
    head, tail, total = b"", b"", 0
    async with session.get(address, timeout=aiohttp.ClientTimeout(total=120)) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_chunked(MIB):
            if len(head) < 4096:
                head += chunk[:4096]
            tail = (tail + chunk)[-64:]
            total += len(chunk)
            rss.append(snapshot(pid).rss_mb)
    return head, tail, total


async def test_json_read_of_a_huge_sparse_file_keeps_the_daemon_small(daemon_factory, area):
    big = area / "sparse.bin"
    size = 256 * MIB  # NUL bytes: 6 bytes each once escaped (\u0000), 1.5 GiB of JSON
    with open(big, "wb") as f:
        f.truncate(size)
    d = daemon_factory()
    d.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{d.url}/health") as resp:
            assert resp.status == 200
        baseline = snapshot(d.proc.pid).rss_mb
        reset_peak(d.proc.pid)
        rss: list[float] = []
        head, tail, total = await _read_counting(session, f"{d.url}{url(big)}", d.proc.pid, rss)
    peak = max(rss + [peak_mb(d.proc.pid)])
    assert peak - baseline < 64, f"RSS went from {baseline:.0f} to {peak:.0f} MiB"
    assert head.startswith(b'{"path":"' + str(big).encode()) and b'"content":"\\u0000\\u0000' in head
    assert tail.endswith(b'\\u0000"}')
    prefix = head[: head.index(b'"content":"') + len(b'"content":"')]
    assert total == len(prefix) + 6 * size + 2


async def test_a_client_that_leaves_mid_read_stops_the_read(daemon_factory, area):
    big = area / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(256 * MIB)
    d = daemon_factory()
    d.start()
    pid = d.proc.pid
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{d.url}/health") as resp:
            assert resp.status == 200
    baseline = snapshot(pid)
    read_before = _bytes_read(pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    writer.write(f"GET {url(big)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    received = 0
    while received < 4 * MIB:
        received += len(await asyncio.wait_for(reader.read(MIB), 10))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    await settle(pid, baseline, fd_slack=0, thread_slack=16)
    deadline = time.monotonic() + 10
    while any(t.endswith("sparse.bin") for t in snapshot(pid).fd_targets) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not any(t.endswith("sparse.bin") for t in snapshot(pid).fd_targets), "the file is still open"
    before = _cpu_ticks(pid)
    await asyncio.sleep(1.5)
    assert _cpu_ticks(pid) - before < 20, "the daemon is still busy with the read"  # 20 ticks = 0.2 s
    # 4 MiB of JSON is ~0.7 MiB of NULs: the daemon read a few chunks ahead at most, not the file.
    assert _bytes_read(pid) - read_before < 64 * MIB
    assert snapshot(pid).rss_mb - baseline.rss_mb < 64


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM starts again from the current RSS


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _bytes_read(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("fsReadFile", {"path": "/dev/zero"}),
        ("fsReadFile", {"path": "/dev/urandom"}),
        ("fsEditFile", {"path": "/dev/zero", "oldString": "a", "newString": "b"}),
        (
            "codegenReadFileRange",
            {"targetFile": "/dev/zero", "startLineOneIndexed": 1, "endLineOneIndexedInclusive": 2},
        ),
    ],
)
async def test_mcp_reads_of_an_endless_device_fail_at_once(client, tool, arguments):
    started = time.monotonic()
    result = await mcp_call(client, tool, arguments)
    assert result["isError"] is True
    assert "not a regular file" in result["content"][0]["text"]
    assert time.monotonic() - started < 2


async def test_mcp_reads_past_the_limit_name_the_download_route(client, area):
    big = area / "big.txt"
    with open(big, "wb") as f:
        f.truncate(64 * MIB)
    for tool, arguments in (
        ("fsReadFile", {"path": str(big)}),
        ("fsEditFile", {"path": str(big), "oldString": "a", "newString": "b"}),
        ("codegenReadFileRange", {"targetFile": str(big), "startLineOneIndexed": 1, "endLineOneIndexedInclusive": 1}),
    ):
        result = await mcp_call(client, tool, arguments)
        assert result["isError"] is True, tool
        text = result["content"][0]["text"]
        assert "SANDBOX_MAX_TEXT_READ_BYTES" in text and f"GET /filesystem/{big}?download=true" in text, tool
    assert big.stat().st_size == 64 * MIB  # the edit wrote nothing


async def test_mcp_line_range_of_a_large_file_reads_only_what_it_needs(client, area):
    big = area / "lines.txt"
    big.write_text("".join(f"{i}\n" for i in range(1, 600_001)))  # ~4.5 MiB, past the limit

    def lines(start: int, end: int) -> dict:
        return {"targetFile": str(big), "startLineOneIndexed": start, "endLineOneIndexedInclusive": end}

    result = await mcp_call(client, "codegenReadFileRange", lines(599_999, 600_001))
    assert result["structuredContent"]["content"] == "599999\n600000\n"  # the last "line" is the empty one after \n
    result = await mcp_call(client, "codegenReadFileRange", lines(2, 3))
    assert result["structuredContent"]["content"] == "2\n3"
    result = await mcp_call(client, "codegenReadFileRange", lines(600_000, 600_002))
    assert result["isError"] is True and result["content"][0]["text"] == "invalid line range"


async def test_mcp_reads_cost_bounded_memory(daemon_factory, area):
    """The worst content for an MCP answer (NUL bytes: escaped twice) at the limit, and a
    huge file (refused), both through a real daemon whose peak RSS is watched."""
    at_limit = area / "nuls.bin"
    at_limit.write_bytes(b"\0" * 128 * 1024)
    huge = area / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(64 * MIB)  # enough to show; a regression should not take the machine's memory
    d = daemon_factory()
    d.start()
    pid = d.proc.pid

    async def read(session: aiohttp.ClientSession, path: Path) -> dict:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "fsReadFile", "arguments": {"path": str(path)}},
        }
        async with session.post(f"{d.url}/mcp", json=body, headers=MCP_HEADERS) as resp:
            return (await resp.json())["result"]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        assert (await read(session, at_limit))["isError"] is False  # warm: the MCP code is loaded
        for path, refused in ((at_limit, False), (huge, True)):
            before = snapshot(pid).rss_mb
            reset_peak(pid)
            result = await read(session, path)
            assert result["isError"] is refused, path
            if not refused:
                assert result["structuredContent"]["content"] == "\0" * 128 * 1024
            assert peak_mb(pid) - before < 16, f"{path.name}: peak {peak_mb(pid):.1f} MiB from {before:.1f} MiB"


async def test_the_one_message_read_limit_is_a_setting(daemon_factory, area):
    (area / "ten.txt").write_text("0123456789")
    (area / "eleven.txt").write_text("0123456789A")
    d = daemon_factory(env={"SANDBOX_MAX_TEXT_READ_BYTES": "10"})
    d.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for name, refused in (("ten.txt", False), ("eleven.txt", True)):
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "fsReadFile", "arguments": {"path": str(area / name)}},
            }
            async with session.post(f"{d.url}/mcp", json=body, headers=MCP_HEADERS) as resp:
                result = (await resp.json())["result"]
            assert result["isError"] is refused, name
        async with session.get(f"{d.url}{url(area / 'eleven.txt')}") as resp:  # HTTP: no such limit
            assert (await resp.json())["content"] == "0123456789A"


async def test_codegen_fastapply_reads_are_bounded(client, area, monkeypatch):
    big = area / "big.py"
    with open(big, "wb") as f:
        f.truncate(64 * MIB)
    async with FakeProvider() as fake:
        monkeypatch.setenv("RELACE_API_KEY", "k")
        monkeypatch.setenv("RELACE_BASE_URL", fake.url)
        monkeypatch.delenv("MORPH_API_KEY", raising=False)
        for path, expected in (("/dev/zero", "not a regular file"), (str(big), "SANDBOX_MAX_TEXT_READ_BYTES")):
            resp = await asyncio.wait_for(client.put(f"/codegen/fastapply/{path}", json={"codeEdit": "x"}), 5)
            assert resp.status == 422, path
            assert expected in (await resp.json())["error"], path
        assert fake.requests == []  # nothing was sent to the provider
    assert big.stat().st_size == 64 * MIB


def test_line_ranges_match_splitting_the_whole_text(tmp_path, monkeypatch):
    """Tiny reads, so that ranges start, end and get cut across read boundaries."""
    monkeypatch.setattr(reading, "CHUNK", 5)
    path = tmp_path / "lines.txt"
    texts = (b"", b"\n", b"a", b"a\n", b"one\ntwo\n\nfour\xe2\x82\nfive", b"\n\n\nxyz\n\n", b"long line " * 7 + b"\nz")
    for data in texts:
        path.write_bytes(data)
        lines = go_decode(data).split("\n")
        for start in range(1, len(lines) + 2):
            for end in range(start, len(lines) + 2):
                fd = os.open(path, os.O_RDONLY)
                try:
                    got = reading.read_line_range(fd, str(path), start, end, 1 << 20)
                finally:
                    os.close(fd)
                want = "\n".join(lines[start - 1 : end]) if end <= len(lines) else None
                assert got == want, (data, start, end)


# --- 2. a write never replaces a node that is not a regular file ---------------------------------


async def test_writes_onto_a_device_fifo_or_socket_are_refused_and_leave_it(client, nodes):
    for name, path in nodes.items():
        before = node_identity(path)
        form = aiohttp.FormData()
        form.add_field("file", b"data", filename="f.bin")
        attempts = [
            ("json", client.put(url(path), json={"content": "data"})),
            ("raw", client.put(url(path), data=b"data", headers={"Content-Type": "application/octet-stream"})),
            ("form", client.put(url(path), data=form)),
        ]
        for how, request in attempts:
            resp = await asyncio.wait_for(request, 5)
            assert resp.status == 422, (name, how)
            assert "not a regular file" in (await resp.json())["error"], (name, how)
            assert node_identity(path) == before, (name, how)


async def test_a_write_through_a_symlink_to_a_device_is_refused(client, nodes, area):
    target = nodes.get("device", nodes["fifo"])
    before = node_identity(target)
    (area / "link").symlink_to(target)
    resp = await client.put(url(area / "link"), json={"content": "data"})
    assert resp.status == 422
    assert node_identity(target) == before and os.path.islink(area / "link")


async def test_mcp_write_onto_a_device_is_refused(client, nodes):
    for name, path in nodes.items():
        before = node_identity(path)
        result = await mcp_call(client, "fsWriteFile", {"path": str(path), "content": "data"})
        assert result["isError"] is True and "not a regular file" in result["content"][0]["text"], name
        assert node_identity(path) == before, name


async def test_copy_onto_a_special_node_is_refused(client, nodes, area):
    (area / "regular.txt").write_text("r")
    (area / "link").symlink_to("regular.txt")
    for name, path in nodes.items():
        before = node_identity(path)
        for source in (area / "regular.txt", area / "link"):
            resp = await client.post("/filesystem-copy", json={"source": str(source), "destination": str(path)})
            assert resp.status == 422, (name, source)
            assert node_identity(path) == before, (name, source)


async def test_copy_of_a_device_or_fifo_is_refused_not_an_empty_success(client, nodes, area):
    for name, path in nodes.items():
        destination = area / f"copy-of-{name}"
        resp = await asyncio.wait_for(
            client.post("/filesystem-copy", json={"source": str(path), "destination": str(destination)}), 5
        )
        assert resp.status == 422, name
        assert "not a regular file" in (await resp.json())["error"], name
        assert not os.path.lexists(destination), name


async def _upload_one_part(client, destination: Path) -> tuple[str, str]:
    resp = await client.post(f"/filesystem-multipart/initiate/{destination}", json={})
    upload_id = (await resp.json())["uploadId"]
    form = aiohttp.FormData()
    form.add_field("file", b"part data", filename="blob")
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part?partNumber=1", data=form)
    return upload_id, (await resp.json())["etag"]


async def test_multipart_completion_onto_a_special_node_is_refused(client, nodes):
    for name, path in nodes.items():
        before = node_identity(path)
        upload_id, etag = await _upload_one_part(client, path)
        resp = await client.post(
            f"/filesystem-multipart/{upload_id}/complete", json={"parts": [{"partNumber": 1, "etag": etag}]}
        )
        assert resp.status == 422, name
        assert "not a regular file" in (await resp.json())["error"], name
        assert node_identity(path) == before, name


async def test_put_tree_onto_a_special_node_is_refused(client, nodes, area):
    before = node_identity(nodes["fifo"])
    resp = await client.put(f"/filesystem/tree/{area}", json={"files": {"fifo": "data"}})
    assert resp.status == 422
    assert node_identity(nodes["fifo"]) == before


# --- 3. the small ones --------------------------------------------------------------------------


async def test_a_symlink_loop_is_a_4xx(client, area):
    (area / "a").symlink_to("b")
    (area / "b").symlink_to("a")
    for path, headers in ((area / "a", {}), (area / "a", DOWNLOAD), (area / "a" / "x", {})):
        resp = await client.get(url(path), headers=headers)
        assert resp.status == 422, (path, headers)
        assert "too many levels of symbolic links" in (await resp.json())["error"]


async def test_a_name_too_long_is_400_on_a_read(client, area):
    resp = await client.get(url(area / ("x" * 300)))
    assert resp.status == 400
    assert "file name too long" in (await resp.json())["error"]


@pytest.mark.parametrize("key", ["../escaped.txt", "sub/../../escaped.txt", "a/..", "", ".", "/"])
async def test_put_tree_refuses_escaping_keys_before_writing(client, area, key):
    root = area / "root"
    resp = await client.put(f"/filesystem/tree/{root}", json={"files": {"first.txt": "x", key: "y"}})
    assert resp.status == 400
    assert "invalid file key" in (await resp.json())["error"]
    assert not root.exists() and not (area / "escaped.txt").exists()


async def test_put_tree_failure_removes_what_it_created(client, area):
    root = area / "root"
    root.mkdir()
    (root / "kept.txt").write_text("old")
    # "blocker" is written as a file, so "blocker/inner.txt" cannot get its parent directory.
    files = {"kept.txt": "new", "new/deep/a.txt": "a", "b.txt": "b", "blocker": "x", "blocker/inner.txt": "z"}
    resp = await client.put(f"/filesystem/tree/{root}", json={"files": files})
    assert resp.status == 422
    assert sorted(p.name for p in root.iterdir()) == ["kept.txt"]
    assert (root / "kept.txt").read_text() == "new"  # replaced in place: its old content is gone either way


async def test_put_tree_on_a_full_disk_is_507_and_removes_what_it_created(client, tmp_path):
    with tmpfs(tmp_path / "small", "1m") as mount:
        root = mount / "made" / "root"
        files = {"a.txt": "a", "dir/b.txt": "b", "huge.txt": "h" * (2 * MIB)}
        resp = await client.put(f"/filesystem/tree/{root}", json={"files": files})
        assert resp.status == 507
        assert list(mount.iterdir()) == []


async def test_multipart_completion_refuses_duplicate_parts(client, area):
    destination = area / "dup.bin"
    upload_id, etag = await _upload_one_part(client, destination)
    parts = [{"partNumber": 1, "etag": etag}, {"partNumber": 1, "etag": etag}]
    resp = await client.post(f"/filesystem-multipart/{upload_id}/complete", json={"parts": parts})
    assert resp.status == 400
    assert "part 1 is listed more than once" in (await resp.json())["error"]
    assert not destination.exists()
    resp = await client.post(f"/filesystem-multipart/{upload_id}/complete", json={"parts": parts[:1]})
    assert resp.status == 200 and destination.read_bytes() == b"part data"  # the session survived


async def test_multipart_completion_onto_a_directory_is_422(client, area):
    directory = area / "adir"
    directory.mkdir()
    (directory / "inside").write_text("i")
    upload_id, etag = await _upload_one_part(client, directory)
    parts = [{"partNumber": 1, "etag": etag}]
    resp = await client.post(f"/filesystem-multipart/{upload_id}/complete", json={"parts": parts})
    assert resp.status == 422
    assert "is a directory" in (await resp.json())["error"]
    assert (directory / "inside").read_text() == "i"


async def test_if_range_that_does_not_match_sends_the_whole_file(client, area):
    target = area / "r.bin"
    payload = bytes(range(256)) * 4
    target.write_bytes(payload)
    resp = await client.get(url(target), headers=DOWNLOAD)
    last_modified = resp.headers["Last-Modified"]
    for if_range in ("garbage", '"some-etag"', 'W/"weak"', "Mon, 01 Jan 2001 00:00:00 GMT"):
        resp = await client.get(url(target), headers={**DOWNLOAD, "Range": "bytes=0-9", "If-Range": if_range})
        assert resp.status == 200, if_range
        assert await resp.read() == payload and "Content-Range" not in resp.headers, if_range
    resp = await client.get(url(target), headers={**DOWNLOAD, "Range": "bytes=0-9", "If-Range": last_modified})
    assert resp.status == 206 and await resp.read() == payload[:10]


async def test_a_zero_length_suffix_range_is_416(client, area):
    target = area / "r.bin"
    target.write_bytes(b"12345")
    resp = await client.get(url(target), headers={**DOWNLOAD, "Range": "bytes=-0"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == "bytes */5"
    (area / "empty").write_bytes(b"")
    resp = await client.get(url(area / "empty"), headers={**DOWNLOAD, "Range": "bytes=-5"})
    assert resp.status == 416 and resp.headers["Content-Range"] == "bytes */0"
