"""The filesystem routes as /openapi.json documents them: made from the same table and
shapes that serve and decode them (filesystem/wire.py, filesystem/routes.py)."""

from __future__ import annotations


async def _document(client) -> dict:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    return await resp.json()


async def test_every_filesystem_route_is_documented(client):
    paths = (await _document(client))["paths"]
    expected = {
        "/filesystem/{path}": {"get", "put", "delete"},
        "/filesystem/tree/{path}": {"get", "put", "delete"},
        "/filesystem-copy": {"post"},
        "/filesystem-multipart": {"get"},
        "/filesystem-multipart/initiate/{path}": {"post"},
        "/filesystem-multipart/{uploadId}/part": {"put"},
        "/filesystem-multipart/{uploadId}/complete": {"post"},
        "/filesystem-multipart/{uploadId}/abort": {"delete"},
        "/filesystem-multipart/{uploadId}/parts": {"get"},
        "/watch/filesystem/{path}": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path


async def test_a_read_answers_one_of_two_shapes_and_takes_range_headers(client):
    document = await _document(client)
    read = document["paths"]["/filesystem/{path}"]["get"]
    json_answer = read["responses"]["200"]["content"]["application/json"]["schema"]
    assert json_answer == {
        "anyOf": [{"$ref": "#/components/schemas/Directory"}, {"$ref": "#/components/schemas/FileWithContent"}]
    }
    headers = {p["name"]: p for p in read["parameters"] if p["in"] == "header"}
    assert set(headers) == {"Range", "If-Range", "If-Modified-Since"}
    assert not any(p["required"] for p in headers.values())
    schemas = document["components"]["schemas"]
    assert schemas["FileWithContent"]["required"] == [
        "path",
        "name",
        "permissions",
        "size",
        "lastModified",
        "owner",
        "group",
        "content",
    ]
    assert "content" not in schemas["TreeFile"]["required"]


async def test_comma_separated_queries_are_documented_as_such(client, area):
    tree = (await _document(client))["paths"]["/filesystem/tree/{path}"]["get"]
    patterns = next(p for p in tree["parameters"] if p["name"] == "patterns")
    assert patterns["schema"]["type"] == "array"
    assert (patterns["style"], patterns["explode"]) == ("form", False)
    # ...and read as such.
    (area / "a.py").write_text("a")
    (area / "b.md").write_text("b")
    (area / "c.txt").write_text("c")
    resp = await client.get(f"/filesystem/tree/{area}", params={"recursive": "true", "patterns": "*.py, *.md"})
    names = sorted(f["name"] for f in (await resp.json())["files"])
    assert names == ["a.py", "b.md"]
