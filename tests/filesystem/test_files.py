"""GET/PUT/DELETE /filesystem: read, write (JSON, form, raw), list, download, errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat

import aiohttp
import pytest

from tests.filesystem.conftest import url

FILE_KEYS = ["path", "name", "permissions", "size", "lastModified", "owner", "group"]


async def put_json(client, path, body, status=200):
    resp = await client.put(url(path), json=body)
    payload = await resp.json()
    assert resp.status == status, payload
    return payload


async def test_write_then_read_text(client, area):
    target = area / "a" / "b" / "note.txt"
    body = await put_json(client, target, {"content": "héllo\nwörld"})
    assert body == {"path": str(target), "message": "File created/updated successfully"}
    assert target.read_text() == "héllo\nwörld"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 & ~os.umask(os.umask(0))
    resp = await client.get(url(target))
    data = await resp.json()
    assert list(data) == FILE_KEYS + ["content"]
    assert data["content"] == "héllo\nwörld" and data["path"] == str(target) and data["name"] == ""
    assert data["size"] == len("héllo\nwörld".encode()) and data["permissions"] == "644"
    assert data["owner"] and data["lastModified"].endswith("Z")


async def test_all_three_url_forms_reach_the_same_file(client, area):
    target = area / "forms.txt"
    target.write_text("same")
    encoded = str(target).replace("/", "%2F")
    for path in (f"/filesystem/{target}", f"/filesystem/{encoded}", f"/filesystem{encoded[:3]}{str(target)[1:]}"):
        resp = await client.get(path)
        assert (await resp.json())["content"] == "same", path


async def test_relative_paths_resolve_against_workdir(client, workdir):
    await put_json(client, "rel/dir/f.txt", {"content": "x"})
    assert (workdir / "rel" / "dir" / "f.txt").read_text() == "x"
    data = await (await client.get("/filesystem/rel/dir")).json()
    assert data["path"] == "rel/dir"
    assert [f["path"] for f in data["files"]] == ["rel/dir/f.txt"]
    root = await (await client.get("/filesystem/")).json()
    assert root["path"] == str(workdir)


async def test_invalid_utf8_reads_as_one_replacement_per_byte(client, area):
    target = area / "bad.txt"
    target.write_bytes(b"a\xe2\x82b\xff")
    data = await (await client.get(url(target))).json()
    assert data["content"] == "a\ufffd\ufffdb\ufffd"


async def test_proc_files_are_read_until_eof(client):
    data = await (await client.get("/filesystem//proc/self/status")).json()
    assert "Name:" in data["content"]


async def test_directory_listing_shape_order_and_symlinks(client, area):
    d = area / "list"
    d.mkdir()
    (d / "b.txt").write_text("bb")
    (d / "A.txt").write_text("a")
    (d / ".hidden").write_text("h")
    (d / "sub").mkdir()
    (d / "link").symlink_to(d / "b.txt")
    (d / "dangling").symlink_to(d / "missing")
    (d / "dirlink").symlink_to(d / "sub")
    data = await (await client.get(url(d))).json()
    assert list(data) == ["path", "name", "files", "subdirectories"]
    assert data["name"] == "list"
    names = [f["name"] for f in data["files"]]
    assert names == sorted(names, key=str.encode) == [".hidden", "A.txt", "b.txt", "dangling", "dirlink", "link"]
    assert data["subdirectories"] == [{"path": f"{d}/sub", "name": "sub"}]
    by_name = {f["name"]: f for f in data["files"]}
    assert list(by_name["link"]) == FILE_KEYS
    assert by_name["link"]["permissions"] == "1000000777"  # listed as a symlink
    assert by_name["b.txt"]["size"] == 2
    # ... and followed for reads
    assert (await (await client.get(url(d / "link"))).json())["content"] == "bb"
    listed_through = await (await client.get(url(d / "dirlink"))).json()
    assert listed_through["path"] == f"{d}/dirlink" and listed_through["files"] == []


async def test_mkdir_and_permissions(client, area):
    d = area / "x" / "y"
    body = await put_json(client, d, {"isDirectory": True, "permissions": "0700"})
    assert body["message"] == "Directory created successfully"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    await put_json(client, d, {"isDirectory": True})  # exists: still 200
    f = area / "file"
    f.write_text("x")
    body = await put_json(client, f, {"isDirectory": True}, status=422)
    assert "not a directory" in body["error"]


@pytest.mark.parametrize("value", ["abc", "0o644", "-1", "9999999999999", " 644", "8"])
async def test_bad_permissions_are_400(client, area, value):
    body = await put_json(client, area / "p", {"content": "x", "permissions": value}, status=400)
    assert body["error"].startswith("invalid permissions format")
    assert not (area / "p").exists()


async def test_overwrite_keeps_mode_and_is_atomic(client, area):
    target = area / "keep.sh"
    target.write_text("old")
    target.chmod(0o755)
    inode = target.stat().st_ino
    await put_json(client, target, {"content": "new", "permissions": "0600"})
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # an existing file keeps its mode
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(os.listdir(area)) == ["keep.sh"]  # no temp file left


async def test_write_through_a_symlink_updates_its_target(client, area):
    real = area / "real.txt"
    real.write_text("old")
    link = area / "link.txt"
    link.symlink_to(real)
    await put_json(client, link, {"content": "new"})
    assert link.is_symlink() and real.read_text() == "new"


async def test_readers_never_see_a_half_written_file(client, area):
    target = area / "big.bin"
    old, new = b"o" * (8 << 20), b"n" * (8 << 20)
    target.write_bytes(old)
    stop = False
    seen = set()

    def reader():
        while not stop:
            data = target.read_bytes()
            seen.add((len(data), data[:1], data[-1:]))

    task = asyncio.get_running_loop().run_in_executor(None, reader)
    for _ in range(3):
        for payload in (new, old):
            resp = await client.put(url(target), data=payload, headers={"Content-Type": "application/octet-stream"})
            assert resp.status == 200
    stop = True
    await task
    assert seen <= {(len(old), b"o", b"o"), (len(new), b"n", b"n")}


async def test_large_json_write_above_5_mib(client, area):
    content = "0123456789abcdef" * (6 * 65536)  # 6 MiB
    target = area / "large.txt"
    await put_json(client, target, {"content": content})
    assert target.stat().st_size == len(content)


async def test_lone_surrogates_become_replacement_characters(client, area):
    target = area / "sur.txt"
    resp = await client.put(url(target), data=b'{"content": "a\\ud800b"}', headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert target.read_text() == "a\ufffdb"


@pytest.mark.parametrize("file_first", [True, False])
async def test_multipart_form_in_both_part_orders(client, area, file_first):
    target = area / "nested" / "bin.dat"
    payload = bytes(range(256)) * 40
    form = aiohttp.FormData()
    fields = [("permissions", "0600"), ("path", "/ignored")]
    if not file_first:
        for name, value in fields:
            form.add_field(name, value)
    form.add_field("file", payload, filename="binary-file.bin", content_type="application/octet-stream")
    if file_first:
        for name, value in fields:
            form.add_field(name, value)
    resp = await client.put(url(target), data=form)
    body = await resp.json()
    assert resp.status == 200, body
    assert body == {"path": str(target), "message": "Binary file uploaded successfully"}
    assert target.read_bytes() == payload
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


async def test_multipart_form_without_file_is_400(client, area):
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("permissions", "0644")
    form.add_field("file", "not a file part")  # no filename: a plain value
    resp = await client.put(url(area / "nofile"), data=form)
    assert resp.status == 400
    assert await resp.json() == {"error": "missing 'file' field in multipart form"}


async def test_raw_body_upload_with_permissions(client, area):
    target = area / "raw.bin"
    payload = os.urandom(3 << 20)
    resp = await client.put(
        url(target) + "?permissions=0640", data=payload, headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status == 200
    assert target.read_bytes() == payload
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


async def test_upload_over_the_limit_is_413_and_leaves_nothing(settings, area):
    from dataclasses import replace

    from aiohttp.test_utils import TestClient, TestServer

    from sandbox_api.app import build_app

    async with TestClient(TestServer(build_app(replace(settings, max_upload_bytes=1000)))) as c:
        target = area / "limited"
        target.write_text("old")
        resp = await c.put(url(target), data=b"x" * 5000, headers={"Content-Type": "application/octet-stream"})
        assert resp.status == 413
        assert "error" in await resp.json()

        async def chunked():
            for _ in range(10):
                yield b"y" * 500

        resp = await c.put(url(target), data=chunked(), headers={"Content-Type": "application/octet-stream"})
        assert resp.status == 413
        assert target.read_text() == "old"
        assert os.listdir(area) == ["limited"]


async def test_disconnected_upload_leaves_the_old_file_and_no_temp(client, area):
    target = area / "dc" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    host, port = client.server.host, client.server.port
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"PUT /filesystem/{target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {10 << 20}\r\n\r\n".encode()
    )
    writer.write(b"z" * (3 << 20))
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await asyncio.sleep(0.5)
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["file.bin"]


async def test_download_modes_and_content_types(client, area):
    cases = {
        "a.txt": "text/plain",
        "a.json": "application/json",
        "a.html": "text/html",
        "a.js": "application/javascript",
        "a.css": "text/css",
        "a.bin": "application/octet-stream",
        "a.pdf": "application/pdf",
        "a.zip": "application/zip",
        "a.tar": "application/x-tar",
        "a.gz": "application/gzip",
        "a.jpg": "image/jpeg",
        "a.jpeg": "image/jpeg",
        "a.png": "image/png",
        "a.gif": "image/gif",
        "a.svg": "image/svg+xml",
        "a.xml": "application/xml",
        "a.TXT": "application/octet-stream",
        "noext": "application/octet-stream",
    }
    for name, content_type in cases.items():
        (area / name).write_bytes(b"\x00payload\xff" + name.encode())
        resp = await client.get(url(area / name), headers={"Accept": "application/octet-stream"})
        assert resp.status == 200
        assert resp.headers["Content-Type"] == content_type, name
        assert resp.headers["Content-Disposition"] == f'attachment; filename="{name}"'
        assert await resp.read() == b"\x00payload\xff" + name.encode()
    resp = await client.get(url(area / "a.txt") + "?download=true")
    assert resp.headers["Content-Type"] == "text/plain" and "attachment" in resp.headers["Content-Disposition"]
    for accept in ("", "*/*", "application/json", "text/html,application/xhtml+xml,*/*;q=0.8"):
        resp = await client.get(url(area / "a.txt"), headers={"Accept": accept} if accept else {})
        assert resp.headers["Content-Type"].startswith("application/json"), accept
    resp = await client.get(url(area / "a.txt"), headers={"Accept": "text/plain"})
    assert resp.headers["Content-Type"] == "text/plain"


async def test_range_requests(client, area):
    target = area / "range.bin"
    payload = bytes(range(256)) * 4
    target.write_bytes(payload)
    headers = {"Accept": "application/octet-stream"}
    resp = await client.get(url(target), headers={**headers, "Range": "bytes=10-19"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
    assert await resp.read() == payload[10:20]
    resp = await client.get(url(target), headers={**headers, "Range": "bytes=-5"})
    assert await resp.read() == payload[-5:]
    resp = await client.get(url(target), headers={**headers, "Range": "bytes=5000-"})
    assert resp.status == 416
    resp = await client.get(url(target), headers=headers)
    assert resp.headers["Accept-Ranges"] == "bytes" and resp.headers["Content-Length"] == str(len(payload))
    last_modified = resp.headers["Last-Modified"]
    resp = await client.get(url(target), headers={**headers, "If-Modified-Since": last_modified})
    assert resp.status == 304


async def test_large_download_streams_exact_bytes(client, area):
    target = area / "big.bin"
    with open(target, "wb") as f:
        for i in range(40):
            f.write(hashlib.sha256(str(i).encode()).digest() * 32768)  # 40 MiB
    resp = await client.get(url(target), headers={"Accept": "application/octet-stream"})
    digest = hashlib.sha256()
    async for chunk in resp.content.iter_chunked(1 << 20):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(target.read_bytes()).hexdigest()


async def test_delete_file_dir_recursive_and_symlinks(client, area):
    d = area / "del"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    resp = await client.delete(url(d))
    assert resp.status == 422
    assert "directory not empty" in (await resp.json())["error"]
    resp = await client.delete(url(d / "sub" / "f"))
    assert await resp.json() == {"path": str(d / "sub" / "f"), "message": "File deleted successfully"}
    resp = await client.delete(url(d) + "?recursive=true")
    assert await resp.json() == {"path": str(d), "message": "Directory deleted successfully"}
    assert not d.exists()
    resp = await client.delete(url(d))
    assert resp.status == 404 and await resp.json() == {"error": "file or directory not found"}
    target_dir = area / "keep"
    target_dir.mkdir()
    (target_dir / "inside").write_text("x")
    (area / "dlink").symlink_to(target_dir)
    (area / "dangling").symlink_to(area / "nowhere")
    assert (await client.delete(url(area / "dlink") + "?recursive=true")).status == 200
    assert (target_dir / "inside").exists()  # only the link went
    assert (await client.delete(url(area / "dangling"))).status == 200
    assert not os.path.lexists(area / "dangling")


async def test_error_statuses(client, area):
    resp = await client.get(url(area / "missing"))
    assert resp.status == 404
    assert await resp.json() == {"error": f"stat {area}/missing: no such file or directory"}
    (area / "afile").write_text("x")
    resp = await client.get(url(area / "afile" / "below"))
    assert resp.status == 500 and "not a directory" in (await resp.json())["error"]
    resp = await client.put(url(area / "afile" / "below"), json={"content": "x"})
    assert resp.status == 422 and "not a directory" in (await resp.json())["error"]
    (area / "adir").mkdir()
    resp = await client.put(url(area / "adir"), json={"content": "x"})
    assert resp.status == 422 and "is a directory" in (await resp.json())["error"]
    resp = await client.put(url(area / "x"), data=b"{oops", headers={"Content-Type": "text/plain"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("invalid request body")
    resp = await client.put(url(area / "x"), json={"content": 5})
    assert resp.status == 400


async def test_fifo_is_refused_rather_than_hanging(client, area):
    fifo = area / "pipe"
    os.mkfifo(fifo)
    resp = await asyncio.wait_for(client.get(url(fifo)), 5)
    assert resp.status == 422


async def test_head_twins(client, area):
    for path in (url(area / "nope"), "/filesystem/tree//x", "/filesystem-multipart", "/filesystem-multipart/x/parts"):
        resp = await client.head(path)
        assert resp.status == 200, path


async def test_permission_denied_is_reported(daemon_factory, area):
    """A daemon without the capability to override file permissions (setpriv drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH) meets EACCES on another user's files."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    secret = area / "secret"
    secret.write_text("nobody's")
    secret.chmod(0o600)
    locked = area / "locked"
    locked.mkdir(mode=0o755)
    for path in (secret, locked):
        os.chown(path, 65534, 65534)
    d = daemon_factory()
    d.proc = subprocess.Popen(
        [
            "setpriv",
            "--bounding-set",
            "-dac_override,-dac_read_search",
            sys.executable,
            "-m",
            "sandbox_api",
            "--host",
            "127.0.0.1",
            "-p",
            str(d.port),
        ],
        cwd="/",
        env=d.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{d.url}/health") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        async with session.get(f"{d.url}/filesystem/{secret}") as r:
            assert r.status == 422
            assert "permission denied" in (await r.json())["error"]
        async with session.put(f"{d.url}/filesystem/{locked}/x", json={"content": "x"}) as r:
            assert r.status == 422
            assert "permission denied" in (await r.json())["error"]
        async with session.delete(f"{d.url}/filesystem/{locked}") as r:
            assert r.status == 200  # the parent is ours: removing an empty dir is allowed


async def test_empty_content_is_written_at_once(client, area):
    # writev of an empty piece writes nothing: it once spun forever on one.
    for body in ({}, {"content": ""}):
        target = area / f"empty-{len(body)}.txt"
        await asyncio.wait_for(put_json(client, target, body), 5)
        assert target.read_bytes() == b""
    raw = area / "raw-empty.bin"
    resp = await asyncio.wait_for(
        client.put(url(raw), data=b"", headers={"Content-Type": "application/octet-stream"}), 5
    )
    assert resp.status == 200 and raw.read_bytes() == b""
    data = aiohttp.FormData()
    data.add_field("file", b"", filename="empty")
    resp = await asyncio.wait_for(client.put(url(area / "form-empty"), data=data), 5)
    assert resp.status == 200 and (area / "form-empty").read_bytes() == b""


async def test_unsatisfiable_range_is_a_json_416(client, area):
    target = area / "small.bin"
    target.write_bytes(b"12345")
    resp = await client.get(url(target), headers={"Accept": "application/octet-stream", "Range": "bytes=10-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == "bytes */5"
    assert await resp.json() == {"error": "invalid range: failed to overlap"}


async def test_a_nul_byte_in_a_path_is_400(client, area):
    for method, path in (
        ("GET", "/filesystem/a%00b"),
        ("PUT", "/filesystem/a%00b"),
        ("DELETE", "/filesystem/a%00b"),
        ("GET", "/filesystem/tree/a%00b"),
        ("DELETE", "/filesystem/tree/a%00b"),
        ("GET", "/filesystem-find/a%00b"),
        ("GET", "/filesystem-search/a%00b"),
    ):
        resp = await client.request(method, path, json={"content": "x"} if method == "PUT" else None)
        assert resp.status == 400, (method, path)
        assert (await resp.json())["error"] == "invalid path: it contains a NUL byte"


async def test_malformed_multipart_part_headers_are_400(client, area):
    body = b'--XX\r\nContent-Disposition: form-data; name="\xc3\xa9\x01"\r\n\r\nv\r\n--XX--\r\n'
    resp = await client.put(
        url(area / "form.bin"), data=body, headers={"Content-Type": "multipart/form-data; boundary=XX"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("invalid request body: ")
    assert not (area / "form.bin").exists()
