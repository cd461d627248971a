"""Services built on their first use.

Most sandboxes never call most families (sessions, edits, drives, the tunnel...): the
daemon's cold start should neither import their modules nor build them. Their routes stay
registered at start (routing and OpenAPI need only the wire shapes); the service behind
them is an `OnFirstUse`, whose factory imports the module and builds the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class OnFirstUse(Generic[T]):
    """A service built by `factory` (no arguments) on the first call, the same one after.
    Built on the event loop's thread only, so no lock: a factory is quick and synchronous."""

    __slots__ = ("_factory", "built")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self.built: T | None = None  # None until the first call: shutdown closes only what was built

    def __call__(self) -> T:
        if self.built is None:
            self.built = self._factory()
        return self.built
