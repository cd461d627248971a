"""The watch API's wire shapes (see contract.py)."""

from __future__ import annotations

from typing import Annotated

from ..contract import Shape, doc


class WatchQuery(Shape):
    ignore: Annotated[list[str] | None, doc("Leave out events whose path holds any of these substrings.")] = None
