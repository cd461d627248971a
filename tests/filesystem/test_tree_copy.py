"""/filesystem/tree (one level, recursive with content, bulk write, delete) and /filesystem-copy."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


async def test_put_tree_writes_many_files_and_lists_the_root(client, tmp_path):
    root = tmp_path / "tree"
    resp = await client.put(
        f"/filesystem/tree/{root}", json={"files": {"a.txt": "A", "src/b.py": "B", "src/deep/c": "C"}}
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["path"] == str(root)
    assert [f["name"] for f in body["files"]] == ["a.txt"]
    assert [d["name"] for d in body["subdirectories"]] == ["src"]
    assert (root / "src" / "deep" / "c").read_text() == "C"


async def test_tree_paths_are_always_absolute(client, tmp_path):
    (tmp_path / "t").mkdir()
    for form in (f"/filesystem/tree/{tmp_path}/t", f"/filesystem/tree{str(tmp_path).replace('/', '%2F')}%2Ft"):
        resp = await client.get(form)
        body = await resp.json()
        assert resp.status == 200, (form, body)
        assert body["path"] == f"{tmp_path}/t"


async def test_get_tree_of_a_file_or_nothing_is_400(client, tmp_path):
    (tmp_path / "f").write_text("x")
    for path in (tmp_path / "f", tmp_path / "missing"):
        resp = await client.get(f"/filesystem/tree/{path}")
        assert resp.status == 400
        assert await resp.json() == {"error": "path is not a directory"}


async def test_recursive_tree_read_with_content(client, tmp_path):
    root = tmp_path / "r"
    (root / "src" / "lib").mkdir(parents=True)
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "a.py").write_text("print(1)")
    (root / "src" / "lib" / "b.py").write_text("import a")
    (root / "src" / "notes.md").write_text("# notes")
    (root / ".env").write_text("SECRET=1")
    (root / "node_modules" / "x" / "i.js").write_text("js")
    (root / "link.py").symlink_to(root / "a.py")
    resp = await client.get(f"/filesystem/tree/{root}?recursive=true&content=true")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["recursive"] is True
    files = {f["path"]: f for f in body["files"]}
    assert set(files) == {
        f"{root}/a.py",
        f"{root}/src/lib/b.py",
        f"{root}/src/notes.md",
        f"{root}/.env",
        f"{root}/node_modules/x/i.js",
        f"{root}/link.py",
    }
    assert files[f"{root}/src/lib/b.py"]["content"] == "import a"
    assert files[f"{root}/link.py"]["content"] == "print(1)"  # a symlink to a file is read
    assert {d["path"] for d in body["subdirectories"]} == {
        f"{root}/src",
        f"{root}/src/lib",
        f"{root}/node_modules",
        f"{root}/node_modules/x",
    }
    resp = await client.get(
        f"/filesystem/tree/{root}",
        params={
            "recursive": "true",
            "content": "true",
            "patterns": "*.py",
            "excludeDirs": "node_modules",
            "excludeHidden": "true",
        },
    )
    body = await resp.json()
    assert sorted(f["name"] for f in body["files"]) == ["a.py", "b.py", "link.py"]
    resp = await client.get(f"/filesystem/tree/{root}", params={"recursive": "true"})
    assert all("content" not in f for f in (await resp.json())["files"])


async def test_recursive_tree_limits_are_422_without_partial_result(client, tmp_path):
    root = tmp_path / "lim"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}").write_text("x" * 100)
    resp = await client.get(
        f"/filesystem/tree/{root}", params={"recursive": "true", "content": "true", "maxFiles": "3"}
    )
    assert resp.status == 422 and "maxFiles" in (await resp.json())["error"]
    resp = await client.get(
        f"/filesystem/tree/{root}", params={"recursive": "true", "content": "true", "maxBytes": "250"}
    )
    assert resp.status == 422 and "maxBytes" in (await resp.json())["error"]
    resp = await client.get(f"/filesystem/tree/{root}", params={"recursive": "true", "maxFiles": "x"})
    assert resp.status == 400


async def test_delete_tree(client, tmp_path):
    root = tmp_path / "d"
    (root / "s").mkdir(parents=True)
    resp = await client.delete(f"/filesystem/tree/{root}")
    assert resp.status == 422
    resp = await client.delete(f"/filesystem/tree/{root}?recursive=true")
    assert await resp.json() == {"path": str(root), "message": "Directory deleted successfully"}
    resp = await client.delete(f"/filesystem/tree/{root}?recursive=true")
    assert resp.status == 422  # not a 404, as the original
    (tmp_path / "f").write_text("x")
    resp = await client.delete(f"/filesystem/tree/{tmp_path}/f")
    assert resp.status == 422 and "not a directory" in (await resp.json())["error"]


async def copy(client, source, destination, no_overwrite=False, status=200):
    resp = await client.post(
        "/filesystem-copy", json={"source": str(source), "destination": str(destination), "noOverwrite": no_overwrite}
    )
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_copy_a_file_and_a_directory(client, tmp_path):
    src = tmp_path / "src.sh"
    src.write_text("#!/bin/sh\n")
    src.chmod(0o750)
    body = await copy(client, src, tmp_path / "out" / "dst.sh")
    assert body == {"message": "Files copied", "source": str(src), "destination": str(tmp_path / "out" / "dst.sh")}
    assert (tmp_path / "out" / "dst.sh").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((tmp_path / "out" / "dst.sh").stat().st_mode) == 0o750
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "c.txt").write_text("c")
    (tree / "l").symlink_to("a/b/c.txt")
    await copy(client, tree, tmp_path / "copy")
    assert (tmp_path / "copy" / "a" / "b" / "c.txt").read_text() == "c"
    assert os.readlink(tmp_path / "copy" / "l") == "a/b/c.txt"
    body = await copy(client, tree, tmp_path / "copy")  # an existing directory: copied into it, as cp -r
    assert body["destination"] == str(tmp_path / "copy" / "tree")


async def test_copy_no_overwrite_is_409_and_leaves_the_target(client, tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("new")
    dst = tmp_path / "d.txt"
    dst.write_text("old")
    body = await copy(client, src, dst, no_overwrite=True, status=409)
    assert body["code"] == "FILE_ALREADY_EXISTS" and "error" in body
    assert dst.read_text() == "old"
    await copy(client, src, dst)  # without noOverwrite: replaced
    assert dst.read_text() == "new"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"source": "", "destination": "/x"}, 400),
        ({"source": "/nope/nope", "destination": "/tmp/x"}, 404),
        ({"source": 3}, 400),
    ],
)
async def test_copy_bad_input(client, body, status):
    resp = await client.post("/filesystem-copy", json=body)
    assert resp.status == status
    assert "error" in await resp.json()


async def test_copy_into_itself_is_refused(client, tmp_path: Path):
    (tmp_path / "loop").mkdir()
    resp = await client.post(
        "/filesystem-copy", json={"source": str(tmp_path / "loop"), "destination": str(tmp_path / "loop" / "in")}
    )
    assert resp.status == 400


async def test_put_tree_keys_stay_under_the_root_as_in_go(client, tmp_path):
    # Go joins `/x/y.txt` under the root (filepath.Join); os.path.join would have left it.
    root = tmp_path / "joined"
    resp = await client.put(f"/filesystem/tree/{root}", json={"files": {"/x/y.txt": "y", "a\0": "nul"}})
    assert resp.status == 400  # the NUL key: nothing is written
    resp = await client.put(f"/filesystem/tree/{root}", json={"files": {"/x/y.txt": "y"}})
    assert resp.status == 200, await resp.text()
    assert (root / "x" / "y.txt").read_text() == "y"


async def test_lone_surrogates_in_json_become_replacement_characters(client, tmp_path):
    # Go decodes "\ud800" as U+FFFD; kept as is, no OS call could encode it (a 500).
    source = tmp_path / "src-\ufffd.txt"
    source.write_text("s")
    body = '{{"source": "{}", "destination": "{}"}}'.format(tmp_path / "src-\\ud800.txt", tmp_path / "dst.txt")
    resp = await client.post("/filesystem-copy", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    assert (tmp_path / "dst.txt").read_text() == "s"
