"""GET /filesystem-content-search: ripgrep-backed, early stop, context, no hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


@pytest.fixture
def code(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import os\n\ndef hello():\n    print('Hello World')\n    return 1\n")
    (root / "src" / "util.py").write_text("HELLO = 'hello'\n")
    (root / "notes.md").write_text("say hello\n")
    (root / ".env").write_text("hello=1\n")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "x.js").write_text("hello\n")
    (root / "bin.dat").write_bytes(b"\x00\x01hello\x00")
    (root / ".gitignore").write_text("ignored.txt\n")
    (root / "ignored.txt").write_text("hello\n")
    return root


async def grep(client, root, status=200, **params):
    resp = await client.get(f"/filesystem-content-search/{root}", params={k: str(v) for k, v in params.items()})
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_literal_case_insensitive_by_default(client, code):
    body = await grep(client, code, query="hello")
    paths = sorted({m["path"] for m in body["matches"]})
    assert paths == [".env", "notes.md", "src/app.py", "src/util.py"]  # no node_modules, binary, gitignored
    match = next(m for m in body["matches"] if m["path"] == "src/app.py" and m["line"] == 4)
    assert match["text"] == "    print('Hello World')" and match["column"] == 12
    assert "context" not in match
    assert body["query"] == "hello" and body["total"] == len(body["matches"])


async def test_case_sensitive_regex_and_file_pattern(client, code):
    body = await grep(client, code, query="HELLO", caseSensitive="true")
    assert [(m["path"], m["line"]) for m in body["matches"]] == [("src/util.py", 1)]
    body = await grep(client, code, query="def \\w+\\(", regex="true")
    assert [m["text"] for m in body["matches"]] == ["def hello():"]
    body = await grep(client, code, query="hello", filePattern="*.md")
    assert [m["path"] for m in body["matches"]] == ["notes.md"]
    body = await grep(client, code, query="(", regex="false")  # literal: no regex error
    assert [(m["path"], m["line"]) for m in body["matches"]] == [("src/app.py", 3), ("src/app.py", 4)]


async def test_context_lines(client, code):
    body = await grep(client, code, query="print", contextLines=1)
    assert body["matches"][0]["context"] == "def hello():\n    print('Hello World')\n    return 1"


async def test_no_match_is_an_empty_list(client, code):
    assert await grep(client, code, query="nothing-like-this") == {
        "query": "nothing-like-this",
        "matches": [],
        "total": 0,
    }


async def test_thousands_of_hits_stop_early_and_promptly(client, tmp_path):
    root = tmp_path / "hits"
    root.mkdir()
    for i in range(50):
        (root / f"f{i}.txt").write_text("match here\n" * 200)  # 10,000 hits
    started = time.monotonic()
    assert (await grep(client, root, query="match"))["total"] == 100  # the default
    assert (await grep(client, root, query="match", maxResults=1000))["total"] == 1000
    assert (await grep(client, root, query="match", maxResults=0))["total"] == 10000  # 0 = all
    assert time.monotonic() - started < 10


async def test_bad_input(client, code, tmp_path):
    assert (await grep(client, code, status=400))["error"] == "query parameter is required"
    assert (await grep(client, code, status=400, query=""))["error"] == "query parameter is required"
    assert (await grep(client, code, status=400, query="x", contextLines="x"))["error"] == "invalid contextLines: x"
    assert (await grep(client, code, status=400, query="x", maxResults="1.5"))["error"] == "invalid maxResults: 1.5"
    body = await grep(client, code, status=400, query="([", regex="true")
    assert "invalid regular expression" in body["error"]
    body = await grep(client, tmp_path / "missing", status=400, query="x")
    assert body["error"].startswith("specified directory does not exist")
    await grep(client, code, status=400, query="x", maxResults="-5")


async def test_bad_globs_and_nul_bytes_are_400(client, code):
    body = await grep(client, code, status=400, query="x", filePattern="[abc")
    assert body["error"].startswith("invalid glob: ")
    body = await grep(client, code, status=400, query="x", excludeDirs="[abc")
    assert body["error"].startswith("invalid glob: ")
    for params in ({"query": "a\0b"}, {"query": "x", "filePattern": "a\0"}, {"query": "x", "excludeDirs": "a\0"}):
        assert "NUL" in (await grep(client, code, status=400, **params))["error"]
