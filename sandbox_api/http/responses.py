"""Response helpers every route uses: JSON bodies, request-body parsing, streams."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .. import names
from ..contract import decode_json
from ..errors import Invalid
from ..linux.syscalls import release_free_memory

JSON_TYPE = "application/json"
RELEASE_AFTER_BYTES = 1 << 20


class JsonResponse(web.Response):
    """Forgets its body once sent: aiohttp holds a keep-alive connection's last response
    until that connection's next request, and an answer carrying 8 MiB of logs would
    stay in memory for as long."""

    async def write_eof(self, data: bytes = b"") -> None:
        size = len(self.body) if isinstance(self.body, (bytes, bytearray)) else 0
        await super().write_eof(data)
        self.body = None
        if size >= RELEASE_AFTER_BYTES:
            release_free_memory()  # give the freed megabytes back to the system now


def json_bytes(data: Any) -> bytes:
    """`data` as compact JSON in UTF-8. A name that is not UTF-8 (lone surrogates, see
    names.py) shows one U+FFFD per invalid byte, as Go's encoding/json does."""
    return names.utf8(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def json_response(data: Any, status: int = 200) -> web.Response:
    return JsonResponse(
        body=json_bytes(data),
        status=status,
        content_type=JSON_TYPE,
        charset="utf-8",
    )


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, **extra}


async def read_json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; `Invalid` with the contract's prefix otherwise."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise Invalid("invalid request body: EOF")
        return {}
    try:
        data = decode_json(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(f"invalid request body: {e}") from None
    if not isinstance(data, dict):
        raise Invalid(f"invalid request body: expected a JSON object, got {type(data).__name__}")
    return data


def field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """`data[key]` checked against `kind`; null or absent gives `default`."""
    value = data.get(key)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python, but not in JSON.
    if isinstance(value, bool) and bool not in kinds:
        raise Invalid(f"invalid request body: field {key} must be {_kind_name(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise Invalid(f"invalid request body: field {key} must be {_kind_name(kinds)}, got {_json_type(value)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        bool: "a boolean",
        list: "an array",
        dict: "an object",
        float: "a number",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


async def start_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    """Commit a long-lived streaming response (no buffering by proxies)."""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "X-Accel-Buffering": "no",
        },
    )
    await response.prepare(request)
    return response


async def head_ok(request: web.Request) -> web.Response:
    """HEAD twins answer 200 without looking at anything (as the original)."""
    return web.Response(status=200)
