"""The robustness tests: long, heavy tests of whole behaviours (see each module)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: runs for minutes on purpose (a stream held open for 2 minutes)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests first: under xdist they then run beside the rest of the suite instead
    of after it (each takes minutes of wall time but little CPU)."""
    items.sort(key=lambda item: item.get_closest_marker("soak") is None)
