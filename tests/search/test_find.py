"""GET /filesystem-find: globs (Go semantics), types, limits, exclusions, order."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_api.search.globs import glob_match


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    files = [
        "file1.go",
        "file2.go",
        "readme.md",
        "src/main.go",
        "src/utils/helper.go",
        "docs/guide.md",
        ".hidden/secret.txt",
        ".hiddenfile",
        "node_modules/package.json",
    ]
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return root


async def find(client, root, **params):
    resp = await client.get(f"/filesystem-find/{root}", params={k: str(v) for k, v in params.items()})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["total"] == len(body["matches"])
    return body


async def test_the_original_integration_cases(client, tree):
    body = await find(client, tree, patterns="*.go")
    assert body["total"] == 4 and all(m["type"] == "file" and m["path"].endswith(".go") for m in body["matches"])
    assert (await find(client, tree, patterns="*.md"))["total"] == 2
    dirs = await find(client, tree, type="directory")
    assert [m["path"] for m in dirs["matches"]] == [".", "docs", "src", "src/utils"]
    limited = await find(client, tree, patterns="*.go", maxResults=2)
    assert limited["total"] == 2
    body = await find(client, tree, patterns="*.md,*.json", excludeDirs="docs")
    assert sorted(m["path"] for m in body["matches"]) == ["node_modules/package.json", "readme.md"]
    assert (await find(client, tree, patterns="*.txt", excludeHidden="false", excludeDirs="node_modules"))["total"] == 1
    assert (await find(client, tree, patterns="*.txt"))["total"] == 0
    assert (await find(client, tree, patterns="*.go,*.md"))["total"] == 6
    assert (await find(client, f"{tree}/src", patterns="*.go"))["total"] == 2


async def test_an_empty_exclude_dirs_keeps_the_defaults_and_a_comma_clears_them(client, tree):
    everything = await find(client, tree, patterns="*.json", excludeDirs=",")
    assert [m["path"] for m in everything["matches"]] == ["node_modules/package.json"]
    for params in ({"excludeDirs": ""}, {}):  # Go reads `excludeDirs=` as absent: the default list
        assert (await find(client, tree, patterns="*.json", **params))["total"] == 0


async def test_walk_order_is_depth_first_bytewise(client, tree):
    body = await find(client, tree, maxResults=0)
    # Each directory's contents right after it, bytewise ("docs" < "file1.go" < ... < "src").
    assert [m["path"] for m in body["matches"]] == [
        "docs/guide.md",
        "file1.go",
        "file2.go",
        "readme.md",
        "src/main.go",
        "src/utils/helper.go",
    ]


async def test_default_limit_and_zero_means_all(client, tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(1500):
        (root / f"f{i:04d}.txt").write_text("")
    assert (await find(client, root))["total"] == 20
    assert (await find(client, root, maxResults=5000))["total"] == 1000  # capped
    assert (await find(client, root, maxResults=0))["total"] == 1500


@pytest.mark.parametrize(
    "params, message",
    [
        ({"maxResults": "-1"}, "invalid maxResults: -1"),
        ({"maxResults": "x"}, "invalid maxResults: x"),
        ({"type": "invalid"}, "invalid search type: invalid"),
    ],
)
async def test_bad_parameters_are_400(client, tree, params, message):
    resp = await client.get(f"/filesystem-find/{tree}", params=params)
    assert resp.status == 400
    assert await resp.json() == {"error": message}


async def test_missing_root_is_404_and_symlinks_are_not_followed(client, tmp_path, tree):
    resp = await client.get(f"/filesystem-find/{tmp_path}/missing")
    assert resp.status == 404 and "error" in await resp.json()
    (tree / "loop").symlink_to(tree)
    body = await find(client, tree, maxResults=0, excludeHidden="false", excludeDirs=",")
    assert "loop" in [m["path"] for m in body["matches"]]  # listed as a file, not entered
    assert not any(m["path"].startswith("loop/") for m in body["matches"])


def test_go_glob_semantics():
    assert glob_match("*.go", "main.go") and not glob_match("*.go", "main.GO")
    assert glob_match("[^a]*", "bcd") and not glob_match("[^a]*", "abc")
    assert glob_match("f?le", "file") and not glob_match("f?le", "f/le")
    assert not glob_match("[unclosed", "u")
    assert glob_match("\\*", "*")
