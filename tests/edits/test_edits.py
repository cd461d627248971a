"""POST /edit/view, /edit/str-replace, /edit/create, /edit/insert over real HTTP on real files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def area(tmp_path: Path) -> Path:
    path = tmp_path / "area"
    path.mkdir()
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def post(client, command: str, body: dict, status: int = 200) -> dict:
    resp = await client.post(f"/edit/{command}", json=body)
    payload = await resp.json()
    assert resp.status == status, payload
    return payload


def leftovers(directory: Path) -> list[str]:
    """Temp files an edit could leave (the atomic writer names them .<name>.<hex>.tmp)."""
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


# --- view -------------------------------------------------------------------------------------------


async def test_view_numbers_the_lines_and_gives_the_hash(client, area):
    target = area / "a.py"
    target.write_bytes(b"one\ntwo\nthree\n")
    body = await post(client, "view", {"path": str(target)})
    assert body["content"] == "     1\tone\n     2\ttwo\n     3\tthree"
    assert (body["type"], body["startLine"], body["endLine"], body["totalLines"]) == ("file", 1, 3, 3)
    assert body["sha256"] == sha(target.read_bytes()) and body["size"] == 14 and body["lineEnding"] == "lf"


async def test_view_range_with_minus_one_reads_to_the_end(client, area):
    target = area / "r.txt"
    target.write_text("".join(f"l{i}\n" for i in range(1, 11)))
    body = await post(client, "view", {"path": str(target), "viewRange": [8, -1]})
    assert body["content"] == "     8\tl8\n     9\tl9\n    10\tl10"
    body = await post(client, "view", {"path": str(target), "viewRange": [2, 3]})
    assert body["content"] == "     2\tl2\n     3\tl3" and (body["startLine"], body["endLine"]) == (2, 3)
    error = await post(client, "view", {"path": str(target), "viewRange": [11, 12]}, 400)
    assert "past the end of the file, which has 10 lines" in error["error"]
    error = await post(client, "view", {"path": str(target), "viewRange": [5, 2]}, 400)
    assert "before its start" in error["error"]


async def test_view_of_a_directory_lists_two_levels_without_hidden_entries(client, area):
    (area / "src" / "pkg" / "deep").mkdir(parents=True)
    (area / "src" / "pkg" / "deep" / "too_deep.py").write_text("")
    (area / "src" / "main.py").write_text("")
    (area / ".git").mkdir()
    (area / ".env").write_text("")
    (area / "src" / ".hidden").write_text("")
    (area / "node_modules" / "x").mkdir(parents=True)
    (area / "README").write_text("")
    body = await post(client, "view", {"path": str(area)})
    assert body["type"] == "directory" and body["truncated"] is False
    assert body["entries"] == [
        {"path": f"{area}/README", "type": "file"},
        {"path": f"{area}/src", "type": "directory"},
        {"path": f"{area}/src/main.py", "type": "file"},
        {"path": f"{area}/src/pkg", "type": "directory"},
    ]
    assert body["content"].splitlines() == [f"{area}/", f"{area}/README", f"{area}/src/", f"{area}/src/main.py",
                                            f"{area}/src/pkg/"]  # fmt: skip


async def test_relative_paths_resolve_against_the_working_directory(client, workdir):
    (workdir / "rel.txt").write_text("hello\n")
    body = await post(client, "str-replace", {"path": "rel.txt", "oldStr": "hello", "newStr": "bye"})
    assert body["path"] == "rel.txt" and (workdir / "rel.txt").read_text() == "bye\n"


# --- str_replace ------------------------------------------------------------------------------------


async def test_str_replace_answers_a_numbered_snippet_and_the_new_hash(client, area):
    target = area / "s.txt"
    target.write_text("".join(f"line {i}\n" for i in range(1, 21)))
    body = await post(client, "str-replace", {"path": str(target), "oldStr": "line 10\n", "newStr": "ten\nTEN\n"})
    assert target.read_text().splitlines()[9:11] == ["ten", "TEN"]
    assert body["sha256"] == sha(target.read_bytes()) and body["size"] == target.stat().st_size
    assert (body["snippetStartLine"], body["snippetEndLine"]) == (6, 15)
    assert body["snippet"].splitlines()[4:6] == ["    10\tten", "    11\tTEN"]


async def test_str_replace_refuses_several_occurrences_naming_their_lines(client, area):
    target = area / "dup.txt"
    original = b"x = 1\ny = 2\nx = 1\nz\nx = 1\n"
    target.write_bytes(original)
    error = await post(client, "str-replace", {"path": str(target), "oldStr": "x = 1", "newStr": "x = 9"}, 422)
    assert "occurs 3 times" in error["error"] and "lines 1, 3, 5" in error["error"]
    assert error["occurrences"] == 3 and error["lines"] == [1, 3, 5]
    assert target.read_bytes() == original


async def test_str_replace_refuses_text_that_does_not_occur(client, area):
    target = area / "none.txt"
    target.write_bytes(b"alpha\n")
    error = await post(client, "str-replace", {"path": str(target), "oldStr": "beta", "newStr": "b"}, 422)
    assert "does not occur" in error["error"] and error["occurrences"] == 0 and error["lines"] == []
    assert target.read_bytes() == b"alpha\n"


async def test_str_replace_keeps_crlf_line_endings(client, area):
    target = area / "win.txt"
    target.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    # An agent sends LF text (as it saw it in a view): it matches, and the file stays CRLF.
    body = await post(client, "str-replace", {"path": str(target), "oldStr": "two\nthree", "newStr": "2\n2b\n3"})
    assert target.read_bytes() == b"one\r\n2\r\n2b\r\n3\r\n"
    assert body["lineEnding"] == "crlf" and body["sha256"] == sha(target.read_bytes())


async def test_a_mixed_file_keeps_every_untouched_line_ending(client, area):
    target = area / "mixed.txt"
    target.write_bytes(b"a\r\nb\nc\r\nd\r\n")
    await post(client, "str-replace", {"path": str(target), "oldStr": "d", "newStr": "D"})
    assert target.read_bytes() == b"a\r\nb\nc\r\nD\r\n"


async def test_an_edit_keeps_mode_and_owner(client, area):
    target = area / "script.sh"
    target.write_text("#!/bin/sh\necho old\n")
    os.chmod(target, 0o751)
    if os.geteuid() == 0:
        os.chown(target, 1234, 5678)
    await post(client, "str-replace", {"path": str(target), "oldStr": "old", "newStr": "new"})
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o751 and target.read_text() == "#!/bin/sh\necho new\n"
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 5678)
    await post(client, "insert", {"path": str(target), "insertLine": 1, "insertText": "set -e"})
    assert stat.S_IMODE(target.stat().st_mode) == 0o751 and leftovers(area) == []


async def test_an_edit_through_a_symlink_changes_the_target_and_keeps_the_link(client, area):
    real = area / "real.txt"
    real.write_text("v1\n")
    link = area / "link.txt"
    link.symlink_to(real)
    await post(client, "str-replace", {"path": str(link), "oldStr": "v1", "newStr": "v2"})
    assert link.is_symlink() and real.read_text() == "v2\n"


# --- expectedSha256 ---------------------------------------------------------------------------------


async def test_a_stale_expected_sha256_is_refused_with_the_current_hash(client, area):
    target = area / "c.txt"
    target.write_bytes(b"base\n")
    seen = (await post(client, "view", {"path": str(target)}))["sha256"]
    target.write_bytes(b"base\nchanged by someone else\n")
    error = await post(client, "str-replace", {"path": str(target), "oldStr": "base", "newStr": "mine",
                                               "expectedSha256": seen}, 409)  # fmt: skip
    assert error["currentSha256"] == sha(target.read_bytes()) and error["currentSha256"] in error["error"]
    assert target.read_bytes() == b"base\nchanged by someone else\n"


async def test_agents_editing_the_same_version_one_wins_the_others_get_409(client, area):
    target = area / "race.txt"
    target.write_bytes(b"".join(b"line %d\n" % i for i in range(200)))
    seen = sha(target.read_bytes())
    agents = (10, 20, 30, 40)

    async def agent(n: int):
        body = {"path": str(target), "oldStr": f"line {n}\n", "newStr": f"agent {n}\n", "expectedSha256": seen}
        resp = await client.post("/edit/str-replace", json=body)
        return n, resp.status, await resp.json()

    results = await asyncio.wait_for(asyncio.gather(*(agent(n) for n in agents)), 30)
    assert sorted(status for _, status, _ in results) == [200, 409, 409, 409], results
    winner = next(body for _, status, body in results if status == 200)
    text = target.read_text()
    assert sum(f"agent {n}" in text for n in agents) == 1  # exactly one edit landed
    for _, status, body in results:
        if status == 409:
            assert body["currentSha256"] == winner["sha256"] == sha(target.read_bytes())
    # A loser chains from the hash it was given and succeeds.
    n = next(n for n, status, _ in results if status == 409)
    again = {"path": str(target), "oldStr": f"line {n}\n", "newStr": f"agent {n}\n",
             "expectedSha256": winner["sha256"]}  # fmt: skip
    body = await post(client, "str-replace", again)
    assert body["sha256"] == sha(target.read_bytes()) and leftovers(area) == []


async def test_a_malformed_expected_sha256_is_a_400(client, area):
    target = area / "m.txt"
    target.write_text("x\n")
    error = await post(client, "insert", {"path": str(target), "insertLine": 0, "insertText": "y",
                                          "expectedSha256": "abc"}, 400)  # fmt: skip
    assert "64 hexadecimal digits" in error["error"]


# --- create / insert --------------------------------------------------------------------------------


async def test_create_makes_parents_and_replaces_an_existing_file_keeping_its_mode(client, area):
    target = area / "new" / "dir" / "f.txt"
    body = await post(client, "create", {"path": str(target), "fileText": "hello\nworld\n"})
    assert body["created"] is True and target.read_text() == "hello\nworld\n"
    assert body["sha256"] == sha(b"hello\nworld\n") and body["snippet"] == "     1\thello\n     2\tworld"
    os.chmod(target, 0o600)
    body = await post(client, "create", {"path": str(target), "fileText": "again\n", "expectedSha256": body["sha256"]})
    assert body["created"] is False and target.read_text() == "again\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    error = await post(client, "create", {"path": str(target), "fileText": "x", "expectedSha256": "0" * 64}, 409)
    assert error["currentSha256"] == sha(b"again\n") and target.read_text() == "again\n"


async def test_insert_after_line_n_and_at_the_top(client, area):
    target = area / "i.txt"
    target.write_bytes(b"a\nb\nc\n")
    body = await post(client, "insert", {"path": str(target), "insertLine": 2, "insertText": "after b"})
    assert target.read_bytes() == b"a\nb\nafter b\nc\n"
    assert body["snippet"].splitlines()[2] == "     3\tafter b"
    await post(client, "insert", {"path": str(target), "insertLine": 0, "insertText": "top\n"})
    await post(client, "insert", {"path": str(target), "insertLine": 5, "insertText": "end"})
    assert target.read_bytes() == b"top\na\nb\nafter b\nc\nend\n"
    error = await post(client, "insert", {"path": str(target), "insertLine": 7, "insertText": "x"}, 400)
    assert "which has 6 lines" in error["error"]


async def test_insert_keeps_crlf_and_a_missing_final_newline(client, area):
    target = area / "crlf.txt"
    target.write_bytes(b"a\r\nb")
    await post(client, "insert", {"path": str(target), "insertLine": 1, "insertText": "mid"})
    await post(client, "insert", {"path": str(target), "insertLine": 3, "insertText": "last"})
    assert target.read_bytes() == b"a\r\nmid\r\nb\r\nlast"


# --- refusals ---------------------------------------------------------------------------------------


async def test_empty_old_str_is_a_400(client, area):
    target = area / "e.txt"
    target.write_text("x\n")
    error = await post(client, "str-replace", {"path": str(target), "oldStr": "", "newStr": "y"}, 400)
    assert "old_str must not be empty" in error["error"]


async def test_binary_and_non_utf8_files_are_refused_untouched(client, area):
    binary = area / "b.bin"
    binary.write_bytes(b"abc\x00def")
    error = await post(client, "str-replace", {"path": str(binary), "oldStr": "abc", "newStr": "x"}, 422)
    assert "binary" in error["error"] and binary.read_bytes() == b"abc\x00def"
    latin = area / "l.txt"
    latin.write_bytes(b"caf\xe9\n")
    error = await post(client, "view", {"path": str(latin)}, 422)
    assert "not UTF-8" in error["error"] and "offset 3" in error["error"]
    await post(client, "insert", {"path": str(latin), "insertLine": 0, "insertText": "x"}, 422)
    assert latin.read_bytes() == b"caf\xe9\n"


async def test_a_directory_is_refused_except_by_view(client, area):
    error = await post(client, "str-replace", {"path": str(area), "oldStr": "a", "newStr": "b"}, 422)
    assert "is a directory" in error["error"]
    await post(client, "insert", {"path": str(area), "insertLine": 0, "insertText": "b"}, 422)
    await post(client, "create", {"path": str(area), "fileText": "b"}, 422)
    assert (await post(client, "view", {"path": str(area)}))["type"] == "directory"


async def test_a_missing_file_is_a_404(client, area):
    error = await post(client, "str-replace", {"path": str(area / "nope"), "oldStr": "a", "newStr": "b"}, 404)
    assert "no such file" in error["error"]


async def test_missing_fields_are_400(client, area):
    await post(client, "str-replace", {"path": str(area / "x")}, 400)
    await post(client, "insert", {"path": str(area / "x"), "insertText": "y"}, 400)
    await post(client, "create", {"path": str(area / "x")}, 400)
    await post(client, "view", {}, 400)
    await post(client, "view", {"path": str(area), "viewRange": ["a", 2]}, 400)


@pytest.fixture
def small_limit(settings):
    from dataclasses import replace

    return replace(settings, max_edit_bytes=1000)


async def test_oversize_files_are_refused_with_413(aiohttp_client_factory, area):
    client = aiohttp_client_factory
    big = area / "big.txt"
    big.write_text("x" * 2000)
    error = await post(client, "view", {"path": str(big)}, 413)
    assert "SANDBOX_MAX_EDIT_BYTES" in error["error"]
    await post(client, "str-replace", {"path": str(big), "oldStr": "x", "newStr": "y"}, 413)
    await post(client, "create", {"path": str(area / "new.txt"), "fileText": "y" * 1001}, 413)
    assert big.read_text() == "x" * 2000 and not (area / "new.txt").exists()
    small = area / "small.txt"
    small.write_text("abc")
    await post(client, "str-replace", {"path": str(small), "oldStr": "b", "newStr": "b" * 1000}, 413)
    assert small.read_text() == "abc" and leftovers(area) == []


@pytest.fixture
async def aiohttp_client_factory(small_limit):
    from aiohttp.test_utils import TestClient, TestServer

    from sandbox_api.app import build_app

    async with TestClient(TestServer(build_app(small_limit))) as c:
        yield c


# --- the document ---------------------------------------------------------------------------------


async def test_the_document_describes_the_answers_with_their_extra_keys(client, area):
    """The real answers (a change, a 409 with currentSha256, a 422 with occurrences and lines)
    match the schemas /openapi.json gives for them."""
    import jsonschema

    document = await (await client.get("/openapi.json")).json()

    def check(route: str, status: int, answer: dict) -> None:
        schema = document["paths"][f"/edit/{route}"]["post"]["responses"][str(status)]["content"]
        root = {**schema["application/json"]["schema"], "components": document["components"]}
        jsonschema.Draft202012Validator(root).validate(answer)
        assert all(key in json.dumps(root) for key in answer), (route, status, answer)

    target = area / "d.txt"
    check("create", 200, await post(client, "create", {"path": str(target), "fileText": "a\nb\na\n"}))
    check("view", 200, await post(client, "view", {"path": str(target)}))
    check("view", 200, await post(client, "view", {"path": str(area)}))
    stale = "0" * 64
    body = {"path": str(target), "oldStr": "b", "newStr": "c", "expectedSha256": stale}
    check("str-replace", 409, await post(client, "str-replace", body, 409))
    check("str-replace", 422, await post(client, "str-replace", {"path": str(target), "oldStr": "a"}, 422))
    check("insert", 200, await post(client, "insert", {"path": str(target), "insertLine": 1, "insertText": "x"}))
