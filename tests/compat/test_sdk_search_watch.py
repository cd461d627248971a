"""The official Python SDK's fs.find, fs.grep and fs.watch against the daemon."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sdksearch") / uuid.uuid4().hex[:8]
    for name, text in {
        "app/main.py": "def main():\n    print('TODO: ship it')\n",
        "app/util.py": "# TODO later\n",
        "README.md": "# Project\n",
        "node_modules/dep/index.js": "// TODO vendored\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


async def test_find(sandbox, project):
    result = await sandbox.fs.find(str(project), type="file", patterns=["*.py"])
    assert sorted(m.path for m in result.matches) == ["app/main.py", "app/util.py"]
    assert result.total == 2
    dirs = await sandbox.fs.find(str(project), type="directory")
    assert "app" in [m.path for m in dirs.matches] and "node_modules" not in [m.path for m in dirs.matches]


async def test_grep(sandbox, project):
    result = await sandbox.fs.grep("todo", str(project))
    assert sorted((m.path, m.line) for m in result.matches) == [("app/main.py", 2), ("app/util.py", 1)]
    assert result.total == 2
    none = await sandbox.fs.grep("no-such-text-anywhere", str(project))
    assert none.matches == [] and none.total == 0
    with_context = await sandbox.fs.grep("print", str(project), context_lines=1, file_pattern="*.py")
    assert with_context.matches[0].context == "def main():\n    print('TODO: ship it')"


@pytest.mark.parametrize("with_content", [False, True])
async def test_watch(sandbox, project, with_content):
    events = []
    errors = []

    async def on_event(event):
        events.append(event)

    handle = sandbox.fs.watch(str(project), on_event, {"with_content": with_content, "on_error": errors.append})
    await asyncio.sleep(0.5)
    name = f"watched-{with_content}.txt"
    await sandbox.fs.write(str(project / name), "watched content")
    for _ in range(50):
        if any(e.name == name for e in events):
            break
        await asyncio.sleep(0.1)
    handle.close()
    assert not errors
    created = [e for e in events if e.name == name]
    assert created and created[0].path == str(project)
    if with_content:
        assert any(e.content == "watched content" for e in created)
