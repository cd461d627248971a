"""GET /filesystem-search: fzf-like ranking."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox_api.search.fuzzy import Term, rank, v2_score


def test_scores_follow_fzf():
    # A contiguous match at the start of a word beats a scattered one, and gaps cost.
    assert v2_score("src/main.go", Term("main", False)) > v2_score("src/my_a_i_n.go", Term("main", False))
    assert v2_score("fuzzy-finder", Term("ff", False)) > v2_score("fuzzyfinder", Term("ff", False))
    assert v2_score("abc", Term("abd", False)) is None
    assert v2_score("README.md", Term("readme", False)) == v2_score("readme.md", Term("readme", False))
    assert v2_score("README.md", Term("README", True)) is not None
    assert v2_score("readme.md", Term("README", True)) is None  # smart case


def test_rank_prefers_short_exact_basenames_and_keeps_walk_order_on_ties():
    candidates = [
        ("lib/deep/nested/handler_test.go", "file"),
        ("handler.go", "file"),
        ("src/handler.go", "file"),
        ("hxaxnxdxlxexr.go", "file"),
    ]
    ranked = [m["path"] for m in rank(candidates, "handler.go", 10)]
    assert ranked[:2] == ["handler.go", "src/handler.go"]
    assert "hxaxnxdxlxexr.go" not in ranked[:2]


def test_multiple_terms_must_all_match():
    candidates = [("sandbox/api/main.py", "file"), ("sandbox/cli.py", "file"), ("api/server.py", "file")]
    assert [m["path"] for m in rank(candidates, "sandbox api", 10)] == ["sandbox/api/main.py"]


async def test_endpoint_with_query_parameter(client, tmp_path):
    root = tmp_path / "fz"
    for name in ("src/main.go", "src/util.go", "docs/maintenance.md", "node_modules/main.js", ".git/main"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    resp = await client.get(f"/filesystem-search/{root}", params={"query": "main"})
    body = await resp.json()
    assert resp.status == 200, body
    paths = [m["path"] for m in body["matches"]]
    assert paths[0] == "src/main.go"
    assert "docs/maintenance.md" in paths
    assert not any(p.startswith(("node_modules", ".git")) for p in paths)
    assert all(isinstance(m["score"], int) and m["type"] in ("file", "directory") for m in body["matches"])
    assert body["total"] == len(paths)


async def test_endpoint_uses_the_path_as_pattern_without_query(client, workdir):
    (workdir / "src").mkdir()
    (workdir / "src" / "a.py").write_text("")
    resp = await client.get("/filesystem-search/")
    assert resp.status == 400
    assert await resp.json() == {"error": "query parameter is required in path"}
    resp = await client.get("/filesystem-search/src")
    assert resp.status == 200


@pytest.mark.skipif(shutil.which("fzf") is None, reason="fzf not installed")
def test_top_results_agree_with_fzf():
    root = Path(__file__).resolve().parents[2] / "sandbox_api"
    candidates = sorted(
        (str(p.relative_to(root)), "directory" if p.is_dir() else "file")
        for p in root.rglob("*")
        if "__pycache__" not in p.parts
    )
    data = "\n".join(p for p, _ in candidates).encode()
    for query in ("supervisor", "routes", "logst", "fsfiles", "http err"):
        expected = (
            subprocess.run(["fzf", "--filter", query], input=data, capture_output=True, timeout=30)
            .stdout.decode()
            .splitlines()[:5]
        )
        ours = [m["path"] for m in rank(candidates, query, 5)]
        assert len(set(expected) & set(ours)) >= min(4, len(expected)), (query, expected, ours)
