"""S3-style multipart uploads, and the full-disk case."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app


def form(data: bytes, filename: str = "part") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return f


async def initiate(client, path: Path, body=None) -> str:
    resp = await client.post(f"/filesystem-multipart/initiate/{str(path).replace('/', '%2F', 1)}", json=body)
    data = await resp.json()
    assert resp.status == 200, data
    assert data["path"] == str(path)
    return data["uploadId"]


async def put_part(client, upload_id: str, number: int, data: bytes, status: int = 200) -> dict:
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part?partNumber={number}", data=form(data))
    body = await resp.json()
    assert resp.status == status, body
    return body


async def complete(client, upload_id: str, parts: list[dict], status: int = 200) -> dict:
    resp = await client.post(f"/filesystem-multipart/{upload_id}/complete", json={"parts": parts})
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_basic_upload_lists_parts_and_assembles(client, tmp_path):
    target = tmp_path / "out" / "file.bin"
    upload_id = await initiate(client, target, {"permissions": "0640"})
    chunks = [os.urandom(1000), os.urandom(2000), os.urandom(500)]
    etags = []
    for number, chunk in enumerate(chunks, 1):
        body = await put_part(client, upload_id, number, chunk)
        assert body == {"partNumber": number, "etag": hashlib.md5(chunk).hexdigest(), "size": len(chunk)}
        etags.append(body["etag"])
    parts = await (await client.get(f"/filesystem-multipart/{upload_id}/parts")).json()
    assert parts["uploadId"] == upload_id and [p["partNumber"] for p in parts["parts"]] == [1, 2, 3]
    listing = await (await client.get("/filesystem-multipart")).json()
    assert upload_id in [u["uploadId"] for u in listing["uploads"]]
    body = await complete(client, upload_id, [{"partNumber": n, "etag": e} for n, e in enumerate(etags, 1)])
    assert body == {"path": str(target), "message": "Multipart upload completed successfully"}
    assert target.read_bytes() == b"".join(chunks)
    assert oct(target.stat().st_mode & 0o777) == oct(0o640 & ~os.umask(os.umask(0)))
    listing = await (await client.get("/filesystem-multipart")).json()
    assert upload_id not in [u["uploadId"] for u in listing["uploads"]]


async def test_parts_in_any_order_and_in_parallel(client, tmp_path):
    target = tmp_path / "parallel.bin"
    upload_id = await initiate(client, target)
    chunks = {n: os.urandom(300_000) for n in range(1, 9)}
    results = await asyncio.gather(*(put_part(client, upload_id, n, chunks[n]) for n in sorted(chunks, reverse=True)))
    parts = [{"partNumber": r["partNumber"], "etag": r["etag"], "size": r["size"]} for r in results]
    await complete(client, upload_id, parts)  # unsorted, with extra keys: both fine
    assert target.read_bytes() == b"".join(chunks[n] for n in sorted(chunks))


async def test_out_of_order_small_parts(client, tmp_path):
    target = tmp_path / "ooo.txt"
    upload_id = await initiate(client, target)
    etags = {}
    for number, text in ((3, b"Third"), (2, b"Second"), (1, b"First")):
        etags[number] = (await put_part(client, upload_id, number, text))["etag"]
    await complete(client, upload_id, [{"partNumber": n, "etag": etags[n]} for n in (1, 2, 3)])
    assert target.read_text() == "FirstSecondThird"


async def test_reuploading_a_part_replaces_it(client, tmp_path):
    target = tmp_path / "re.txt"
    upload_id = await initiate(client, target)
    first = await put_part(client, upload_id, 1, b"old")
    second = await put_part(client, upload_id, 1, b"new content")
    assert first["etag"] != second["etag"]
    await complete(client, upload_id, [{"partNumber": 1, "etag": second["etag"]}], status=200)
    assert target.read_text() == "new content"


async def test_abort_removes_the_session(client, tmp_path):
    target = tmp_path / "aborted.bin"
    upload_id = await initiate(client, target)
    await put_part(client, upload_id, 1, b"x")
    resp = await client.delete(f"/filesystem-multipart/{upload_id}/abort")
    assert await resp.json() == {"path": "", "message": "Multipart upload aborted successfully"}
    await put_part(client, upload_id, 2, b"y", status=404)
    assert not target.exists()
    assert (await client.delete(f"/filesystem-multipart/{upload_id}/abort")).status == 404


@pytest.mark.parametrize("number", ["0", "10001", "-1"])
async def test_invalid_part_numbers_are_400(client, tmp_path, number):
    upload_id = await initiate(client, tmp_path / "n")
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part?partNumber={number}", data=form(b"x"))
    assert resp.status == 400
    assert "between 1 and 10000" in (await resp.json())["error"]


async def test_part_number_required_and_integer(client, tmp_path):
    upload_id = await initiate(client, tmp_path / "n")
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part", data=form(b"x"))
    assert resp.status == 400 and await resp.json() == {"error": "partNumber is required"}
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part?partNumber=x", data=form(b"x"))
    assert resp.status == 400 and "invalid partNumber" in (await resp.json())["error"]


@pytest.mark.parametrize("number", ["1\n", "\u0663", "1.0", " 1"])
async def test_part_number_is_ascii_digits_only(client, tmp_path, number):
    # As strconv.Atoi: a trailing newline or a non-ASCII digit is not an integer.
    upload_id = await initiate(client, tmp_path / "n")
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part", params={"partNumber": number}, data=form(b"x"))
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("invalid partNumber: ")
    parts = await client.get(f"/filesystem-multipart/{upload_id}/parts")
    assert (await parts.json())["parts"] == []


async def test_wrong_etag_missing_part_and_empty_list(client, tmp_path):
    target = tmp_path / "bad.bin"
    upload_id = await initiate(client, target)
    await put_part(client, upload_id, 1, b"data")
    body = await complete(client, upload_id, [{"partNumber": 1, "etag": "0" * 32}], status=400)
    assert body["error"] == "failed to complete upload: etag mismatch for part 1"
    body = await complete(client, upload_id, [{"partNumber": 2, "etag": "0" * 32}], status=400)
    assert body["error"] == "failed to complete upload: part 2 not found"
    body = await complete(client, upload_id, [], status=400)
    assert body["error"] == "at least one part is required"
    assert not target.exists()


async def test_unknown_upload_is_404_everywhere(client):
    unknown = "00000000-0000-0000-0000-000000000000"
    assert (await client.put(f"/filesystem-multipart/{unknown}/part?partNumber=1", data=form(b"x"))).status == 404
    assert (
        await client.post(f"/filesystem-multipart/{unknown}/complete", json={"parts": [{"partNumber": 1, "etag": "x"}]})
    ).status == 404
    assert (await client.get(f"/filesystem-multipart/{unknown}/parts")).status == 404
    assert (await client.delete(f"/filesystem-multipart/{unknown}/abort")).status == 404
    assert (await client.get("/filesystem-multipart/..%2F..%2Fetc/parts")).status == 404


async def test_bad_initiate_permissions_is_400(client, tmp_path):
    resp = await client.post(f"/filesystem-multipart/initiate/{tmp_path}/x", json={"permissions": "rwx"})
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("invalid permissions format: ")


async def test_sessions_survive_a_daemon_restart(daemon_factory, tmp_path):
    target = tmp_path / "resumed.bin"
    first = daemon_factory()
    first.start()
    async with aiohttp.ClientSession(first.url) as session:
        resp = await session.post(f"/filesystem-multipart/initiate/{target}")
        upload_id = (await resp.json())["uploadId"]
        resp = await session.put(f"/filesystem-multipart/{upload_id}/part?partNumber=1", data=form(b"before-"))
        etag1 = (await resp.json())["etag"]
    first.stop(9)
    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    async with aiohttp.ClientSession(second.url) as session:
        resp = await session.get(f"/filesystem-multipart/{upload_id}/parts")
        assert [p["etag"] for p in (await resp.json())["parts"]] == [etag1]
        resp = await session.put(f"/filesystem-multipart/{upload_id}/part?partNumber=2", data=form(b"after"))
        etag2 = (await resp.json())["etag"]
        resp = await session.post(
            f"/filesystem-multipart/{upload_id}/complete",
            json={"parts": [{"partNumber": 1, "etag": etag1}, {"partNumber": 2, "etag": etag2}]},
        )
        assert resp.status == 200
    assert target.read_bytes() == b"before-after"


async def test_abandoned_sessions_expire(settings, tmp_path):
    app = build_app(replace(settings, upload_ttl_seconds=0.5))
    async with TestClient(TestServer(app)) as c:
        upload_id = await initiate(c, tmp_path / "never")
        await put_part(c, upload_id, 1, b"x")
        await asyncio.sleep(1.2)
        assert (await c.get(f"/filesystem-multipart/{upload_id}/parts")).status == 404
        assert not (settings.uploads_dir / upload_id).exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted for the test (needs root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_is_507_and_keeps_the_old_file(client, small_disk):
    target = small_disk / "f.bin"
    target.write_bytes(b"old content")
    resp = await client.put(
        f"/filesystem/{target}", data=os.urandom(2 << 20), headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status == 507
    assert "no space left on device" in (await resp.json())["error"]
    assert target.read_bytes() == b"old content"
    assert os.listdir(small_disk) == ["f.bin"]
    resp = await client.put(f"/filesystem/{small_disk}/json.txt", json={"content": "z" * (2 << 20)})
    assert resp.status == 507
    assert os.listdir(small_disk) == ["f.bin"]
    upload_id = await initiate(client, small_disk / "mp.bin")
    etag = (await put_part(client, upload_id, 1, os.urandom(2 << 20)))["etag"]
    await complete(client, upload_id, [{"partNumber": 1, "etag": etag}], status=507)
    assert os.listdir(small_disk) == ["f.bin"]


async def test_a_malformed_part_is_400(client, tmp_path):
    upload_id = await initiate(client, tmp_path / "m.bin")
    for body in (
        b"--YY\r\n\r\nnot the boundary\r\n",
        b'--XX\r\nContent-Disposition: form-data; name="\xc3\xa9\x01"\r\n\r\nv\r\n--XX--\r\n',
    ):
        resp = await client.put(
            f"/filesystem-multipart/{upload_id}/part?partNumber=1",
            data=body,
            headers={"Content-Type": "multipart/form-data; boundary=XX"},
        )
        assert resp.status == 400, await resp.text()
