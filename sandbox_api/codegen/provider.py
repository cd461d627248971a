"""The codegen provider, chosen from the environment on each call (see service.py). Apart
from the service: whether codegen is enabled is decided at start (the MCP tools it
registers), without importing the service."""

from __future__ import annotations

from dataclasses import dataclass

from .. import config


@dataclass(frozen=True)
class Provider:
    name: str  # "relace" or "morphllm", as replies report it
    key: str
    base_url: str


def provider() -> Provider | None:
    relace = config.get_variable("RELACE_API_KEY")
    if relace:
        return Provider(
            "relace", relace, (config.get_variable("RELACE_BASE_URL") or "https://models.relace.ai").rstrip("/")
        )
    morph = config.get_variable("MORPH_API_KEY")
    if morph:
        return Provider(
            "morphllm", morph, (config.get_variable("MORPH_BASE_URL") or "https://api.morphllm.com/v1").rstrip("/")
        )
    return None


def enabled() -> bool:
    return provider() is not None
