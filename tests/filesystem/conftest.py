"""What the filesystem tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def area(tmp_path: Path) -> Path:
    """A directory of the test's own (tmp_path also holds the daemon's state)."""
    path = tmp_path / "area"
    path.mkdir()
    return path


def url(path: Path | str) -> str:
    return f"/filesystem/{path}"  # an absolute path gives //abs, as the Python SDK sends
