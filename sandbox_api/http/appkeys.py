"""Application keys shared by every route module."""

from __future__ import annotations

from aiohttp import web

from ..config import Settings

SETTINGS = web.AppKey("settings", Settings)
