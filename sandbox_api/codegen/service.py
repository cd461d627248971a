"""Codegen: fast apply (merge an edit snippet into a file) and reranking (the files of a
directory most relevant to a query), done by Relace or Morph.

The provider is chosen per call from the environment: `RELACE_API_KEY` first
(`RELACE_BASE_URL`, default https://models.relace.ai), else `MORPH_API_KEY`
(`MORPH_BASE_URL`, our addition for tests and proxies, default
https://api.morphllm.com/v1). Provider failures are 422 with the provider's words.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import aiohttp

from .. import outbound
from ..errors import Invalid, NotFound, Unprocessable
from ..filesystem.files import Files
from ..paths import ResolvedPath
from .provider import Provider, provider
from .wire import DEFAULT_SCORE_THRESHOLD, DEFAULT_TOKEN_LIMIT

NOT_CONFIGURED = (
    "codegen tools are not configured, follow this documentation to configure it: "
    "https://docs.blaxel.ai/Sandboxes/Codegen"
)
SKIPPED_DIRS = frozenset({"node_modules", "vendor", ".git", "dist", "build", "target", "__pycache__", ".venv"})
MAX_RERANK_FILE_BYTES = 1024 * 1024  # larger files are data, not code worth ranking
PROVIDER_TIMEOUT_SECONDS = 120.0
PROVIDER_CONNECT_SECONDS = 10.0


def _configured() -> Provider:
    found = provider()
    if found is None:
        raise Invalid(NOT_CONFIGURED)
    return found


async def _post(p: Provider, url: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {p.key}", "Content-Type": "application/json"}
    try:
        async with await outbound.session(
            timeout=aiohttp.ClientTimeout(total=PROVIDER_TIMEOUT_SECONDS, sock_connect=PROVIDER_CONNECT_SECONDS)
        ) as session:
            async with session.post(url, json=body, headers=headers) as response:
                text = await response.text(errors="replace")
                if response.status >= 300:
                    raise Unprocessable(f"{p.name} returned HTTP {response.status}: {text.strip()[:1000]}")
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    raise Unprocessable(f"{p.name} returned a body that is not JSON: {text.strip()[:200]}") from None
    except aiohttp.ClientError as e:
        raise Unprocessable(f"{p.name} request failed: {e}") from None
    except TimeoutError:
        raise Unprocessable(f"{p.name} did not answer within {PROVIDER_TIMEOUT_SECONDS:g} s") from None


async def merge(p: Provider, original: str, edit: str, model: str | None) -> str:
    """The provider's merge of `edit` (a snippet with `// ... existing code ...` markers) into `original`."""
    if p.name == "relace":
        chosen = model if model and model != "auto" else "relace-apply-3"
        reply = await _post(
            p,
            f"{p.base_url}/v1/code/apply",
            {"initial_code": original, "edit_snippet": edit, "model": chosen, "stream": False},
        )
        merged = reply.get("mergedCode") if isinstance(reply, dict) else None
    else:
        chosen = model if model and model != "auto" else "morph-v3-large"
        content = f"<code>{original}</code>\n<update>{edit}</update>"
        reply = await _post(
            p,
            f"{p.base_url}/chat/completions",
            {"model": chosen, "messages": [{"role": "user", "content": content}], "stream": False},
        )
        try:
            merged = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            merged = None
    if not isinstance(merged, str) or not merged:
        raise Unprocessable(f"{p.name} returned no merged code")
    return merged


async def rank(p: Provider, query: str, documents: list[tuple[str, str]], token_limit: int) -> list[tuple[int, float]]:
    """(index into documents, score) pairs."""
    if p.name == "relace":
        reply = await _post(
            p,
            f"{p.base_url}/v2/code/rank",
            {
                "query": query,
                "codebase": [{"filename": name, "content": text} for name, text in documents],
                "token_limit": token_limit,
            },
        )
        results = reply.get("results") if isinstance(reply, dict) else reply
        index = {name: i for i, (name, _) in enumerate(documents)}
        pairs = [(index.get(str(r.get("filename"))), r.get("score")) for r in results or [] if isinstance(r, dict)]
    else:
        reply = await _post(
            p,
            f"{p.base_url}/rerank",
            {
                "model": "morph-rerank-v3",
                "query": query,
                "documents": [text for _, text in documents],
            },
        )
        results = reply.get("results") if isinstance(reply, dict) else None
        pairs = [(r.get("index"), r.get("relevance_score")) for r in results or [] if isinstance(r, dict)]
    valid = [
        (i, float(score))
        for i, score in pairs
        if isinstance(i, int) and 0 <= i < len(documents) and isinstance(score, (int, float))
    ]
    if results is None:
        raise Unprocessable(f"{p.name} returned no ranking")
    return valid


class Codegen:
    def __init__(self, files: Files) -> None:
        self.files = files

    def ensure_configured(self) -> None:
        """The "not configured" 400 comes before any other check, as in the original."""
        _configured()

    async def fastapply(self, target: ResolvedPath, code_edit: Any, model: Any) -> dict[str, Any]:
        p = _configured()
        if not isinstance(code_edit, str) or not code_edit:
            raise Invalid("invalid request body: codeEdit is required")
        if model is not None and not isinstance(model, str):
            raise Invalid("invalid request body: model must be a string")
        try:
            if await self.files.is_directory(target):
                raise Invalid("path is a directory, not a file")
            original = (await self.files.read_text(target))["content"]
        except NotFound:
            original = ""  # a missing file is created by the edit
        updated = await merge(p, original, code_edit, model)
        await self.files.write_bytes(target, updated.encode("utf-8"), 0o644)
        return {
            "success": True,
            "path": target.display,
            "originalContent": original,
            "updatedContent": updated,
            "provider": p.name,
            "message": f"Code edit applied successfully to {target.display}",
        }

    async def rerank(
        self, root: ResolvedPath, query: str | None, score_threshold: float, token_limit: int, file_pattern: str | None
    ) -> dict[str, Any]:
        p = _configured()
        if not query:
            raise Invalid("query is required")
        if not await self.files.is_directory(root):
            raise Invalid("path is not a directory")
        try:
            pattern = re.compile(file_pattern) if file_pattern else None
        except re.error as e:
            raise Invalid(f"invalid filePattern: {e}") from None
        threshold = score_threshold or DEFAULT_SCORE_THRESHOLD
        limit = token_limit or DEFAULT_TOKEN_LIMIT
        documents = await asyncio.to_thread(_collect, root.absolute, pattern)
        if not documents:
            return {"success": True, "files": [], "message": "No files found matching criteria"}
        ranked = await rank(p, query, documents, limit)
        kept = sorted(((documents[i], score) for i, score in ranked if score >= threshold), key=lambda item: -item[1])
        files = [{"path": path, "content": text, "score": score} for (path, text), score in kept]
        return {"success": True, "files": files, "message": f"Found {len(files)} relevant files"}


def _collect(root: str, pattern: re.Pattern[str] | None) -> list[tuple[str, str]]:
    """Text files under `root`: hidden entries, dependency and build directories, binary
    and very large files left out (the original walked into node_modules' subdirectories)."""
    documents = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(directory, name)
            if pattern is not None and not (pattern.search(path) or pattern.search(name)):
                continue
            try:
                if os.path.getsize(path) > MAX_RERANK_FILE_BYTES:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if b"\0" in data[:8192]:
                continue
            documents.append((path, data.decode("utf-8", "replace")))
    return documents
