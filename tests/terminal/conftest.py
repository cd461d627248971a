"""Every terminal test runs its daemon with an empty $HOME (see tests/conftest.clean_home)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _empty_home(clean_home: Path) -> Path:
    return clean_home
