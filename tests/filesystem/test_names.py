"""Names that are not UTF-8, and names with a newline, on every route that lists or takes names.

The rule (names.py): a byte that is not UTF-8 shows as U+FFFD (one per byte, as the Go
original's JSON), in valid UTF-8 JSON; a file is addressed by its raw bytes
percent-encoded in the URL path (`%FF`). Nothing answers 500.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

BAD = b"bad\xff.txt"
BAD_SHOWN = "bad\ufffd.txt"
SUB = b"sub\xfe"
SUB_SHOWN = "sub\ufffd"
NEWLINE = "new\nline.txt"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def make(directory: Path | bytes, name: bytes | str, content: bytes = b"needle\n") -> bytes:
    path = os.path.join(os.fsencode(directory), os.fsencode(name))
    with open(path, "wb") as f:
        f.write(content)
    return path


def url_path(path: Path | bytes | str) -> str:
    """A path as a URL path: every byte that is not plain ASCII percent-encoded."""
    return quote(os.fsencode(path))


def strict(raw: bytes) -> Any:
    """What a strict client parses: UTF-8 text, and no lone surrogate, escaped or not."""
    data = json.loads(raw.decode("utf-8"))
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return data


async def get_json(client, url: str, **params: str) -> Any:
    resp = await client.get(url, params=params or None)
    raw = await resp.read()
    assert resp.status == 200, raw
    return strict(raw)


@pytest.fixture
def tree(workdir: Path) -> Path:
    """workdir/d with `bad\\xff.txt`, `new\\nline.txt` and `sub\\xfe/bad\\xff.txt`."""
    d = workdir / "d"
    d.mkdir()
    make(d, BAD)
    make(d, NEWLINE)
    os.mkdir(os.path.join(os.fsencode(d), SUB))
    make(os.path.join(os.fsencode(d), SUB), BAD)
    return d


async def test_directory_listing(client, tree):
    listing = await get_json(client, "/filesystem/d")
    assert [f["name"] for f in listing["files"]] == [BAD_SHOWN, NEWLINE]
    assert [f["path"] for f in listing["files"]] == [f"d/{BAD_SHOWN}", f"d/{NEWLINE}"]
    assert listing["subdirectories"] == [{"path": f"d/{SUB_SHOWN}", "name": SUB_SHOWN}]


async def test_tree_from_an_ancestor(client, workdir, tree):
    recursive = await get_json(client, f"/filesystem/tree/{workdir}", recursive="true", content="true")
    files = {f["path"]: f["content"] for f in recursive["files"]}
    assert files == {
        f"{tree}/{BAD_SHOWN}": "needle\n",
        f"{tree}/{NEWLINE}": "needle\n",
        f"{tree}/{SUB_SHOWN}/{BAD_SHOWN}": "needle\n",
    }
    assert {d["name"] for d in recursive["subdirectories"]} == {"d", SUB_SHOWN}
    flat = await get_json(client, f"/filesystem/tree/{tree}")
    assert [f["name"] for f in flat["files"]] == [BAD_SHOWN, NEWLINE]


async def test_find(client, tree):
    found = await get_json(client, "/filesystem-find/d")
    assert {m["path"] for m in found["matches"]} == {BAD_SHOWN, NEWLINE, f"{SUB_SHOWN}/{BAD_SHOWN}"}
    directories = await get_json(client, "/filesystem-find/d", type="directory")
    assert [m["path"] for m in directories["matches"]] == [".", SUB_SHOWN]
    # Globs match the real name: `?` is the invalid byte (a typed U+FFFD is not).
    globbed = await get_json(client, "/filesystem-find/d", patterns="bad?.txt")
    assert {m["path"] for m in globbed["matches"]} == {BAD_SHOWN, f"{SUB_SHOWN}/{BAD_SHOWN}"}
    globbed = await get_json(client, "/filesystem-content-search/d", query="needle", filePattern="bad?.txt")
    assert {m["path"] for m in globbed["matches"]} == {BAD_SHOWN, f"{SUB_SHOWN}/{BAD_SHOWN}"}


async def test_fuzzy_search(client, tree):
    found = await get_json(client, "/filesystem-search/d", query="bad")
    assert {m["path"] for m in found["matches"]} == {BAD_SHOWN, f"{SUB_SHOWN}/{BAD_SHOWN}"}
    found = await get_json(client, "/filesystem-search/d", query="line")
    assert [m["path"] for m in found["matches"]] == [NEWLINE]


@pytest.mark.parametrize("context", ["0", "1"])
async def test_content_search_gives_whole_names(client, tree, context):
    # Newlines anywhere in a name, and a part after one that looks like the start of a line of rg's output.
    (tree / "x\n.").mkdir()
    for name in ("\nfirst.txt", "last\n", "two\n\nlines.txt", "x\n./fake.txt", "--\nsep.txt"):
        make(tree, name, b"before\nneedle\nafter\n")
    found = await get_json(client, "/filesystem-content-search/d", query="needle", contextLines=context)
    paths = sorted(m["path"] for m in found["matches"])
    expected = [BAD_SHOWN, NEWLINE, f"{SUB_SHOWN}/{BAD_SHOWN}", "\nfirst.txt", "last\n", "two\n\nlines.txt"]
    expected += ["x\n./fake.txt", "--\nsep.txt"]
    assert paths == sorted(expected)
    if context == "1":
        assert {m["context"] for m in found["matches"] if m["path"] == "last\n"} == {"before\nneedle\nafter"}
    # A name with a newline comes back whole: the file can be read by it.
    read = await get_json(client, "/filesystem/d/" + quote(NEWLINE))
    assert read["content"] == "needle\n"


async def test_file_addressed_by_its_raw_bytes_in_the_url(client, workdir, tree):
    make(tree, "bad%FF.txt", b"literal\n")  # the escape's own text: `%25FF` addresses it, `%FF` the byte
    read = await get_json(client, "/filesystem/d/bad%FF.txt")
    assert read["content"] == "needle\n"
    assert read["path"] == f"d/{BAD_SHOWN}"
    literal = await get_json(client, "/filesystem/d/bad%25FF.txt")
    assert literal["content"] == "literal\n"
    # Download: the name in the header as shown everywhere.
    resp = await client.get("/filesystem/d/bad%FF.txt", headers={"Accept": "application/octet-stream"})
    assert resp.status == 200
    assert await resp.read() == b"needle\n"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{BAD_SHOWN}"'
    # Write, upload, list, delete through the same URL form.
    resp = await client.put("/filesystem/d/made%FE.txt", json={"content": "made"})
    assert resp.status == 200, await resp.text()
    assert strict(await resp.read())["path"] == "d/made\ufffd.txt"
    assert open(os.path.join(os.fsencode(tree), b"made\xfe.txt"), "rb").read() == b"made"
    resp = await client.put(
        "/filesystem/d/up%FD.bin", data=b"raw", headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status == 200, await resp.text()
    assert open(os.path.join(os.fsencode(tree), b"up\xfd.bin"), "rb").read() == b"raw"
    listing = await get_json(client, "/filesystem/d/sub%FE")
    assert [f["name"] for f in listing["files"]] == [BAD_SHOWN]
    flat = await get_json(client, f"/filesystem/tree{url_path(tree)}/sub%FE")
    assert [f["name"] for f in flat["files"]] == [BAD_SHOWN]
    found = await get_json(client, "/filesystem-find/d/sub%FE")
    assert [m["path"] for m in found["matches"]] == [BAD_SHOWN]
    found = await get_json(client, "/filesystem-content-search/d/sub%FE", query="needle")
    assert [m["path"] for m in found["matches"]] == [BAD_SHOWN]
    resp = await client.delete("/filesystem/d/made%FE.txt")
    assert resp.status == 200, await resp.text()
    assert not os.path.exists(os.path.join(os.fsencode(tree), b"made\xfe.txt"))
    # A missing one: a 404 whose message shows the name as listed.
    resp = await client.get("/filesystem/d/nope%FF.txt")
    assert resp.status == 404
    assert "d/nope\ufffd.txt" in strict(await resp.read())["error"]


async def test_multipart_upload_to_a_raw_byte_name(client, tree):
    resp = await client.post("/filesystem-multipart/initiate/d/multi%FC.bin", json={})
    assert resp.status == 200, await resp.text()
    upload_id = strict(await resp.read())["uploadId"]
    form = aiohttp.FormData()
    form.add_field("file", b"part-one", filename="part")
    resp = await client.put(f"/filesystem-multipart/{upload_id}/part", params={"partNumber": "1"}, data=form)
    assert resp.status == 200, await resp.text()
    etag = strict(await resp.read())["etag"]
    resp = await client.post(
        f"/filesystem-multipart/{upload_id}/complete", json={"parts": [{"partNumber": 1, "etag": etag}]}
    )
    assert resp.status == 200, await resp.text()
    assert strict(await resp.read())["path"].endswith("/d/multi\ufffd.bin")
    assert open(os.path.join(os.fsencode(tree), b"multi\xfc.bin"), "rb").read() == b"part-one"


class WatchLines:
    def __init__(self, resp) -> None:
        self.resp = resp

    async def until(self, predicate, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Events (strictly parsed) until one matches `predicate`."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not seen in time; got {events}")
            raw = await asyncio.wait_for(self.resp.content.readline(), remaining)
            assert raw.endswith(b"\n"), raw
            if raw == b"[keepalive]\n":
                continue
            event = strict(raw)
            events.append(event)
            if predicate(event):
                return events


async def open_watch(client, path: str) -> WatchLines:
    resp = await client.get(f"/watch/filesystem/{path}")
    assert resp.status == 200, await resp.text()
    assert await asyncio.wait_for(resp.content.readline(), 5) == b"[keepalive]\n"
    return WatchLines(resp)


async def test_watch_events(client, tmp_path):
    stream = await open_watch(client, str(tmp_path))
    make(tmp_path, BAD)
    make(tmp_path, NEWLINE)
    seen: set[str] = set()
    await stream.until(lambda e: seen.add(e["name"]) or {BAD_SHOWN, NEWLINE} <= seen)
    stream.resp.close()


async def test_recursive_watch_below_a_raw_byte_directory(client, tmp_path):
    stream = await open_watch(client, f"{tmp_path}/**")
    os.mkdir(os.path.join(os.fsencode(tmp_path), SUB))
    make(os.path.join(os.fsencode(tmp_path), SUB), BAD)
    await stream.until(
        lambda e: e["op"] == "CREATE" and e["name"] == BAD_SHOWN and e["path"] == f"{tmp_path}/{SUB_SHOWN}"
    )
    stream.resp.close()


async def test_watch_of_a_directory_addressed_by_its_raw_bytes(client, tmp_path):
    directory = os.path.join(os.fsencode(tmp_path), SUB)
    os.mkdir(directory)
    stream = await open_watch(client, url_path(directory))
    make(directory, b"inside.txt")
    await stream.until(lambda e: e["name"] == "inside.txt" and e["path"] == f"{tmp_path}/{SUB_SHOWN}")
    stream.resp.close()


async def mcp_call(client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    resp = await client.post("/mcp", data=json.dumps(body), headers=MCP_HEADERS)
    raw = await resp.read()
    assert resp.status == 200, raw
    return strict(raw)["result"]


async def test_mcp_list_directory(client, tree):
    result = await mcp_call(client, "fsListDirectory", {"path": str(tree)})
    assert not result.get("isError"), result
    directory = result["structuredContent"]["directory"]
    assert [f["name"] for f in directory["files"]] == [BAD_SHOWN, NEWLINE]
    assert directory["subdirectories"] == [{"path": f"{tree}/{SUB_SHOWN}", "name": SUB_SHOWN}]
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
    # JSON text cannot carry the byte: the name as shown (or a lone surrogate escape) names no file.
    for path in (f"{tree}/{BAD_SHOWN}", f"{tree}/bad\udcff.txt"):
        result = await mcp_call(client, "fsReadFile", {"path": path})
        assert result.get("isError"), result


async def test_a_streamed_read_of_a_file_named_with_invalid_bytes(client, workdir):
    # Past 256 KiB the JSON read is streamed: its head (path, name) shows U+FFFD too.
    make(workdir, b"big\xff.txt", b"x" * (300 * 1024))
    read = await get_json(client, "/filesystem/big%FF.txt")
    assert read["path"].endswith("big\ufffd.txt")
    assert read["content"] == "x" * (300 * 1024)
