"""Codegen against a fake Relace/Morph server started here: HTTP routes, the official
SDK and the two MCP tools that appear with a key."""

from __future__ import annotations

import os

import aiohttp
import pytest
from aiohttp import web

from ..conftest import Daemon, free_port

NOT_CONFIGURED = "codegen tools are not configured, follow this documentation to configure it: https://docs.blaxel.ai/Sandboxes/Codegen"
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class FakeProvider:
    """Relace (/v1/code/apply, /v2/code/rank) and Morph (/chat/completions, /rerank)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, dict, str]] = []
        self.fail_with: int | None = None

    def merged(self, original: str, edit: str) -> str:
        return original.replace("// ... existing code ...\n", "") + edit.replace("// ... existing code ...\n", "")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, body, request.headers.get("Authorization", "")))
        if self.fail_with:
            return web.json_response({"detail": "quota exceeded"}, status=self.fail_with)
        if request.path == "/v1/code/apply":
            return web.json_response({"mergedCode": self.merged(body["initial_code"], body["edit_snippet"])})
        if request.path == "/chat/completions":
            content = body["messages"][0]["content"]
            original = content.split("<code>", 1)[1].split("</code>", 1)[0]
            edit = content.split("<update>", 1)[1].split("</update>", 1)[0]
            return web.json_response({"choices": [{"message": {"content": self.merged(original, edit)}}]})
        if request.path == "/v2/code/rank":
            results = [
                {"filename": f["filename"], "score": 0.9 if "auth" in f["content"] else 0.1} for f in body["codebase"]
            ]
            return web.json_response({"results": results})
        if request.path == "/rerank":
            results = [
                {"index": i, "relevance_score": 0.8 if "auth" in d else 0.2} for i, d in enumerate(body["documents"])
            ]
            return web.json_response({"results": results})
        return web.json_response({"error": "unknown"}, status=404)

    async def __aenter__(self) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


@pytest.fixture
def no_keys(monkeypatch):
    for key in ("RELACE_API_KEY", "MORPH_API_KEY", "RELACE_BASE_URL", "MORPH_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


async def test_not_configured_comes_first(client, no_keys):
    for method, path, body in (("PUT", "/codegen/fastapply/x.py", None), ("GET", "/codegen/reranking/", None)):
        async with client.request(method, path, data=body) as r:
            assert r.status == 400
            assert await r.json() == {"error": NOT_CONFIGURED}


@pytest.mark.parametrize("provider", ["relace", "morph"])
async def test_fastapply_merges_and_writes(client, workdir, no_keys, provider):
    async with FakeProvider() as fake:
        if provider == "relace":
            no_keys.setenv("RELACE_API_KEY", "rk-secret")
            no_keys.setenv("RELACE_BASE_URL", fake.url)
        else:
            no_keys.setenv("MORPH_API_KEY", "mk-secret")
            no_keys.setenv("MORPH_BASE_URL", fake.url)
        (workdir / "app.py").write_text("def a():\n    pass\n")
        edit = "// ... existing code ...\ndef b():\n    return 2\n"
        async with client.put("/codegen/fastapply/app.py", json={"codeEdit": edit, "model": None}) as r:
            assert r.status == 200, await r.text()
            reply = await r.json()
        expected = "def a():\n    pass\ndef b():\n    return 2\n"
        assert reply == {
            "success": True,
            "path": "app.py",
            "originalContent": "def a():\n    pass\n",
            "updatedContent": expected,
            "provider": "relace" if provider == "relace" else "morphllm",
            "message": "Code edit applied successfully to app.py",
        }
        assert (workdir / "app.py").read_text() == expected
        path, body, auth = fake.requests[-1]
        if provider == "relace":
            assert (path, body["model"], body["stream"]) == ("/v1/code/apply", "relace-apply-3", False)
            assert auth == "Bearer rk-secret"
        else:
            assert path == "/chat/completions" and body["stream"] is False and auth == "Bearer mk-secret"

        # A missing file is created; a directory is refused; the body is checked.
        async with client.put("/codegen/fastapply/new/dir/file.ts", json={"codeEdit": "x = 1\n"}) as r:
            assert r.status == 200
        assert (workdir / "new/dir/file.ts").read_text() == "x = 1\n"
        assert oct((workdir / "new/dir/file.ts").stat().st_mode & 0o777) == "0o644"
        async with client.put("/codegen/fastapply/new", json={"codeEdit": "x"}) as r:
            assert (r.status, (await r.json())["error"]) == (400, "path is a directory, not a file")
        async with client.put("/codegen/fastapply/app.py", json={"model": "m"}) as r:
            assert r.status == 400 and (await r.json())["error"].startswith("invalid request body")
        # Provider errors are 422 with its words; the file is untouched.
        fake.fail_with = 429
        async with client.put("/codegen/fastapply/app.py", json={"codeEdit": "y"}) as r:
            assert r.status == 422
            assert "HTTP 429" in (await r.json())["error"] and "quota exceeded" in (await r.json())["error"]
        assert (workdir / "app.py").read_text() == expected


async def test_provider_unreachable_is_422(client, workdir, no_keys):
    no_keys.setenv("RELACE_API_KEY", "k")
    no_keys.setenv("RELACE_BASE_URL", f"http://127.0.0.1:{free_port()}")
    async with client.put("/codegen/fastapply/a.py", json={"codeEdit": "x"}) as r:
        assert r.status == 422 and "relace request failed" in (await r.json())["error"]
    assert not (workdir / "a.py").exists()


@pytest.mark.parametrize("provider", ["relace", "morph"])
async def test_reranking(client, workdir, no_keys, provider):
    async with FakeProvider() as fake:
        key = "RELACE" if provider == "relace" else "MORPH"
        no_keys.setenv(f"{key}_API_KEY", "k")
        no_keys.setenv(f"{key}_BASE_URL", fake.url)
        src = workdir / "src"
        (src / "node_modules" / "lib").mkdir(parents=True)
        (src / "auth.py").write_text("def auth(): ...\n")
        (src / "util.py").write_text("def util(): ...\n")
        (src / ".hidden.py").write_text("auth\n")
        (src / "node_modules" / "lib" / "auth.js").write_text("auth\n")
        (src / "blob.bin").write_bytes(b"auth\0\0\0")
        async with client.get("/codegen/reranking/src", params={"query": "login"}) as r:
            assert r.status == 200, await r.text()
            reply = await r.json()
        assert reply["success"] is True and reply["message"] == "Found 1 relevant files"
        assert [(f["path"], f["content"]) for f in reply["files"]] == [(str(src / "auth.py"), "def auth(): ...\n")]
        sent = fake.requests[-1][1]
        names = [d["filename"] for d in sent["codebase"]] if provider == "relace" else sent["documents"]
        assert len(names) == 2  # hidden, dependency and binary files are not sent
        if provider == "relace":
            assert sent["token_limit"] == 30000
        async with client.get("/codegen/reranking/src", params={"query": "q", "scoreThreshold": "0.05"}) as r:
            assert len((await r.json())["files"]) == 2
        async with client.get("/codegen/reranking/src", params={"query": "q", "filePattern": "nothing-matches"}) as r:
            assert await r.json() == {"success": True, "files": [], "message": "No files found matching criteria"}
        async with client.get("/codegen/reranking/src") as r:
            assert r.status == 400
        async with client.get("/codegen/reranking/src/auth.py", params={"query": "q"}) as r:
            assert (r.status, (await r.json())["error"]) == (400, "path is not a directory")


async def test_sdk_and_mcp_with_a_key(tmp_path):
    """A daemon started with a key: the SDK's codegen calls, and MCP lists 22 tools (the original's 21 and bash)."""
    os.environ.setdefault("BL_API_KEY", "local-dummy-key")
    os.environ.setdefault("BL_WORKSPACE", "local")
    from blaxel.core import SandboxInstance
    from blaxel.core.client.models import Metadata, Sandbox, SandboxSpec

    async with FakeProvider() as fake:
        work = tmp_path / "work"
        work.mkdir()
        daemon = Daemon(tmp_path / "state", work, env={"RELACE_API_KEY": "rk", "RELACE_BASE_URL": fake.url})
        daemon.start()
        try:
            sandbox = SandboxInstance(
                Sandbox(metadata=Metadata(name="local"), spec=SandboxSpec()), force_url=daemon.url
            )
            (work / "main.go").write_text("package main\n")
            applied = await sandbox.codegen.fastapply(
                str(work / "main.go"), "// ... existing code ...\nfunc main() {}\n"
            )
            assert applied.success and applied.updated_content == "package main\nfunc main() {}\n"
            (work / "auth.go").write_text("// auth\n")
            ranked = await sandbox.codegen.reranking(str(work), "authentication")
            assert [f.path for f in ranked.files] == [str(work / "auth.go")]

            async with aiohttp.ClientSession() as http:
                listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                async with http.post(f"{daemon.url}/mcp", json=listing, headers=MCP_HEADERS) as r:
                    names = {t["name"] for t in (await r.json())["result"]["tools"]}
                assert len(names) == 24 and {"codegenEditFile", "codegenRerank"} <= names
                call = {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {
                        "name": "codegenEditFile",
                        "arguments": {
                            "targetFile": "main.go",
                            "instructions": "add a helper",
                            "codeEdit": "// ... existing code ...\nfunc h() {}\n",
                        },
                    },
                }
                async with http.post(f"{daemon.url}/mcp", json=call, headers=MCP_HEADERS) as r:
                    result = (await r.json())["result"]
                assert result["structuredContent"] == {
                    "success": True,
                    "message": "Code edit applied successfully to main.go",
                    "filePath": "main.go",
                    "changesApplied": "// ... existing code ...\nfunc h() {}\n",  # the sketch, as the original
                }
                assert (work / "main.go").read_text() == "package main\nfunc main() {}\nfunc h() {}\n"
                call["params"] = {"name": "codegenRerank", "arguments": {"path": ".", "query": "auth"}}
                async with http.post(f"{daemon.url}/mcp", json=call, headers=MCP_HEADERS) as r:
                    files = (await r.json())["result"]["structuredContent"]["files"]
                assert [f["path"] for f in files] == [str(work / "auth.go")]
        finally:
            daemon.stop()
