"""The terminal's shell is interactive, so it reads the startup files of $HOME. A test
machine's own ~/.bashrc is not part of what is tested and can stall a shell for a minute
(pyenv's `init` waits on a lock that a killed shell left behind), so the daemon under
test gets an empty home of its own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home
