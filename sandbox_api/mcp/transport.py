"""`POST /mcp`: MCP over streamable HTTP, stateless, one plain JSON reply per POST.

This used to be the official `mcp` SDK behind an ASGI bridge. It is hand-written now
because the daemon ships as a single static executable with every native extension
compiled into it, and the SDK stands on pydantic, whose core (`pydantic_core`) is a
Rust extension: its crates cannot be fetched where that executable is built, so it
cannot go in. The SDK (with pydantic, jsonschema, anyio, starlette, httpx) also cost
about a second and 40 MB on the first request. What we serve is a small part of the
protocol: no sessions, no SSE, no server-to-client requests, a JSON-RPC reply per
request. tests/compat/test_mcp.py keeps checking it with the official `mcp` client.

The rules, in the order they are checked:
- `MCP-Protocol-Version`, when sent, must be one we speak: else 400, JSON-RPC -32022
  naming the supported versions (a 2026-era client then falls back to `initialize`);
- the media type of `Content-Type` must be application/json: else 400, plain text;
- `Accept` must allow application/json (`*/*`, `application/*` count): else 406;
- the body must be JSON (-32700) holding a JSON-RPC 2.0 request, notification or
  response, or a non-empty batch (array) of them: else 400, -32600. An `id` must be a
  string or an integer. Notifications and responses get 202 with no body, as does a
  batch of nothing else; a batch with requests gets an array of replies.
Methods: initialize (optional: every POST is served as if initialized), ping,
tools/list, tools/call, logging/setLevel, and empty resource/prompt lists; any other
gets -32601. Tool arguments are checked against the tool's input schema (the subset
of JSON Schema tools.py writes); a failing check or a failing tool is an `isError`
result, an unknown tool a -32602 error, as go-sdk answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..contract import decode_json
from ..http import operations
from ..http.operations import Empty, Failure, Media, Operation
from ..http.responses import json_response
from .wire import JsonRpcRequest, JsonRpcResponse

if TYPE_CHECKING:  # the tools (and the services they pull in) load on the first /mcp call
    from .tools import Tool, Tools

log = logging.getLogger("sandbox_api.mcp")

MAX_BODY = 64 * 1024 * 1024
SERVER_NAME = "Sandbox API Server"
SERVER_VERSION = "1.0.0"
GET_ERROR = {"error": "SSE streaming not supported. Please use POST for MCP communication."}

# mcp 2.3.0's HANDSHAKE_PROTOCOL_VERSIONS (mcp_types/version.py): the revisions an
# `initialize` reaches. Its other one, 2026-07-28, is a different wire (no initialize,
# a `_meta` envelope on every request) that we do not speak.
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = PROTOCOL_VERSIONS[-1]
CAPABILITIES = {"logging": {}, "tools": {"listChanged": True}}  # as the original (go-sdk) advertises
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
UNSUPPORTED_PROTOCOL_VERSION = -32022

# The JSON Schema keywords `schema_error` understands (the rest are annotations).
CHECKED_KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum"}
ANNOTATIONS = {"description", "title", "default", "examples"}


class RpcError(Exception):
    """A JSON-RPC error for the request being answered."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            self.error["data"] = data


class McpEndpoint:
    """Answers `POST /mcp`; the tools are built on first use and kept for the app's life."""

    def __init__(self, tools: Callable[[], Tools]) -> None:
        self._tools_factory = tools
        self._tools: dict[str, Tool] | None = None
        self._listed: list[dict[str, Any]] = []

    def _registry(self) -> dict[str, Tool]:
        if self._tools is None:
            tools = sorted(self._tools_factory().all(), key=lambda t: t.name)
            for tool in tools:
                _check_supported(tool.input_schema, f"{tool.name}.inputSchema")
            self._listed = [
                {
                    "name": t.name,
                    "description": t.description,
                    "inputSchema": t.input_schema,
                    "outputSchema": t.output_schema,
                }
                for t in tools
            ]
            self._tools = {t.name: t for t in tools}
        return self._tools

    async def close(self) -> None:
        """Nothing to stop: kept for the app's clean-up hook."""

    async def post(self, request: web.Request) -> web.Response:
        version = request.headers.get("MCP-Protocol-Version")
        if version is not None and version not in PROTOCOL_VERSIONS:
            supported = ", ".join(json.dumps(v) for v in PROTOCOL_VERSIONS)
            message = f"Bad Request: unsupported protocol version {json.dumps(version)} (supported: {supported})"
            data = {"supported": list(PROTOCOL_VERSIONS), "requested": version}
            return json_response(_error(None, UNSUPPORTED_PROTOCOL_VERSION, message, data), status=400)
        if request.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return web.Response(status=400, text="Invalid Content-Type header")
        if not _accepts_json(request.headers.get("Accept", "")):
            message = "Not Acceptable: Client must accept application/json"
            return json_response(_error(None, INVALID_REQUEST, message), status=406)
        if (request.content_length or 0) > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length or 0)
        body = await request.read()  # a chunked body stops at the app's client_max_size (MAX_BODY): 413
        try:
            message = decode_json(body, parse_constant=_no_constant, parse_float=_finite)
        except UnicodeDecodeError as e:
            return json_response(_error(None, PARSE_ERROR, f"Parse error: invalid UTF-8 at byte {e.start}"), status=400)
        except ValueError as e:
            return json_response(_error(None, PARSE_ERROR, f"Parse error: {e}"), status=400)
        if isinstance(message, list):
            if not message:
                return json_response(_error(None, INVALID_REQUEST, "Invalid Request: empty batch"), status=400)
            replies = [r for r in await asyncio.gather(*(self._answer(m) for m in message)) if r is not None]
            return json_response(replies) if replies else web.Response(status=202)
        problem = _envelope_problem(message)
        if problem is not None:
            return json_response(_error(None, INVALID_REQUEST, f"Invalid Request: {problem}"), status=400)
        reply = await self._answer(message)
        return web.Response(status=202) if reply is None else json_response(reply)

    async def _answer(self, message: Any) -> dict[str, Any] | None:
        """The reply to one message of a POST: None for a notification or a response."""
        problem = _envelope_problem(message)
        if problem is not None:
            return _error(None, INVALID_REQUEST, f"Invalid Request: {problem}")
        if "method" not in message or "id" not in message:
            return None  # a notification (nothing to do), or a response (we send no requests)
        try:
            result = await self._dispatch(message["method"], message.get("params") or {})
        except RpcError as e:
            return {"jsonrpc": "2.0", "id": message["id"], "error": e.error}
        except Exception:
            log.exception("MCP %s failed", message["method"])
            return _error(message["id"], INTERNAL_ERROR, "Internal error")
        return {"jsonrpc": "2.0", "id": message["id"], "result": result}

    async def _dispatch(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/call":
            return await self._call_tool(params)
        if method == "tools/list":
            self._registry()
            return {"tools": self._listed}
        if method == "initialize":
            requested = _param(params, "protocolVersion", str, required=True)
            _param(params, "capabilities", dict)
            _param(params, "clientInfo", dict)
            return {
                "protocolVersion": requested if requested in PROTOCOL_VERSIONS else LATEST_VERSION,
                "capabilities": CAPABILITIES,
                "serverInfo": {"name": SERVER_NAME, "version": SERVER_VERSION},
            }
        if method == "ping":
            return {}
        if method == "logging/setLevel":
            if _param(params, "level", str, required=True) not in LOG_LEVELS:
                raise RpcError(INVALID_PARAMS, f'Invalid params: "level" must be one of {json.dumps(list(LOG_LEVELS))}')
            return {}  # we send no log notifications: a stateless POST has no stream for them
        if method == "resources/list":
            return {"resources": []}
        if method == "resources/templates/list":
            return {"resourceTemplates": []}
        if method == "prompts/list":
            return {"prompts": []}
        raise RpcError(METHOD_NOT_FOUND, "Method not found", method)

    async def _call_tool(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _param(params, "name", str, required=True)
        arguments = _param(params, "arguments", dict) or {}
        tool = self._registry().get(name)
        if tool is None:  # a protocol error, as go-sdk answers
            raise RpcError(INVALID_PARAMS, f"unknown tool {json.dumps(name)}")
        schema = tool.input_schema
        properties, required = schema.get("properties", {}), schema.get("required", ())
        # An optional argument sent as null is an absent one (its default applies).
        arguments = {k: v for k, v in arguments.items() if v is not None or k in required or k not in properties}
        error = schema_error(schema, arguments)
        if error is not None:
            return _failure(f'validating "arguments": {error}')
        for key, value in arguments.items():  # 3.0 is a JSON integer: give the handler an int
            if isinstance(value, float) and value.is_integer() and "integer" in _types(properties.get(key, {})):
                arguments[key] = int(value)
        try:
            from .tools import ToolFailure, call

            output = await call(tool, arguments)
        except ToolFailure as e:
            return _failure(str(e) or "tool failed")
        except Exception as e:  # a bug in a tool must not become a protocol error
            log.exception("MCP tool %s failed", tool.name)
            return _failure(f"{type(e).__name__}: {e}")
        return {
            "content": [{"type": "text", "text": json.dumps(output, ensure_ascii=False)}],
            "structuredContent": output,
            "isError": False,
        }


def _failure(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": RpcError(code, message, data).error}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: it could not be written back as JSON
        raise ValueError(f"number {text} is out of range")
    return value


def _accepts_json(header: str) -> bool:
    """The SDK's `check_accept_headers` for JSON replies: wildcards count, parameters are ignored."""
    kinds = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return not kinds.isdisjoint({"application/json", "application/*", "*/*"})


def _envelope_problem(message: Any) -> str | None:
    """Why `message` is not a JSON-RPC 2.0 request, notification or response (None: it is)."""
    if not isinstance(message, dict):
        return f"expected a JSON object, got {_json_type(message)}"
    if message.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if "id" in message and (not isinstance(message["id"], (str, int)) or isinstance(message["id"], bool)):
        return f'"id" must be a string or an integer, got {_json_type(message["id"])}'
    if "method" in message:
        if not isinstance(message["method"], str):
            return '"method" must be a string'
        if message.get("params") is not None and not isinstance(message["params"], dict):
            return '"params" must be an object'
    elif "id" not in message or ("result" in message) == ("error" in message):
        return 'neither a request (no "method") nor a response (an "id" and one of "result" or "error")'
    return None


def _param(params: dict[str, Any], key: str, kind: type, required: bool = False) -> Any:
    value = params.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        wanted = "a string" if kind is str else "an object"
        raise RpcError(INVALID_PARAMS, f"Invalid params: {json.dumps(key)} must be {wanted}, got {_json_type(value)}")
    return value


# --- the JSON Schema subset tools.py uses ------------------------------------------------------------

TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def schema_error(schema: dict[str, Any], value: Any, where: str = "") -> str | None:
    """The first way `value` breaks `schema`: the argument named (`where`, as `env.A` or
    `editRegions[0].startLine`), values shown as JSON and types by their JSON names."""
    kinds = _types(schema)
    named = f"{json.dumps(where, ensure_ascii=False)} " if where else ""
    if kinds and not any(TYPE_CHECKS[kind](value) for kind in kinds):
        wanted = " or ".join(json.dumps(k) for k in kinds)
        got = "null" if value is None else f"{_json_type(value)} {_show(value)}"
        return f"{named}must be of type {wanted}, got {got}"
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return f"{named}must be one of {_show(schema['enum'])}, got {_show(value)}"
    if TYPE_CHECKS["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{named}must be at least {_show(schema['minimum'])}, got {_show(value)}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{named}must be at most {_show(schema['maximum'])}, got {_show(value)}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key in value and (error := schema_error(sub, value[key], _child(where, key))) is not None:
                return error
        for key in schema.get("required", ()):
            if key not in value:
                return f"{json.dumps(_child(where, key), ensure_ascii=False)} is a required property"
        extra, unknown = schema.get("additionalProperties", True), sorted(k for k in value if k not in properties)
        if extra is False and unknown:
            names = ", ".join(json.dumps(k, ensure_ascii=False) for k in unknown)
            inside = f" in {json.dumps(where, ensure_ascii=False)}" if where else ""
            verb = "was" if len(unknown) == 1 else "were"
            return f"Additional properties are not allowed{inside} ({names} {verb} unexpected)"
        if isinstance(extra, dict):
            for key in unknown:
                if (error := schema_error(extra, value[key], _child(where, key))) is not None:
                    return error
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            if (error := schema_error(schema["items"], item, f"{where}[{index}]")) is not None:
                return error
    return None


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check_supported(schema: Any, where: str) -> None:
    """Refuse a schema using keywords `schema_error` would silently skip."""
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: a schema must be an object")
    unknown = set(schema) - CHECKED_KEYWORDS - ANNOTATIONS
    if unknown or not set(_types(schema)) <= set(TYPE_CHECKS):
        raise ValueError(f"{where}: unsupported JSON Schema keywords or types: {sorted(unknown) or schema.get('type')}")
    for key, sub in schema.get("properties", {}).items():
        _check_supported(sub, f"{where}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _check_supported(schema[key], f"{where}.{key}")


def _types(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _show(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if TYPE_CHECKS[name](value) and not (name == "integer" and isinstance(value, float)):
            return name
    return type(value).__name__


MCP = web.AppKey("mcp", McpEndpoint)


async def get_mcp(request: web.Request) -> web.Response:
    return json_response(GET_ERROR, status=405)


async def post_mcp(request: web.Request) -> web.Response:
    return await request.app[MCP].post(request)


_RPC_ERROR = {"application/json": JsonRpcResponse}

OPERATIONS = (
    Operation(
        "POST",
        "/mcp",
        post_mcp,
        "mcp",
        "MCP over streamable HTTP (stateless, JSON replies)",
        {
            200: Media(
                {"application/json": JsonRpcResponse | list[JsonRpcResponse]},
                "The reply (an array of replies for a batch).",
            ),
            202: Empty("Only notifications or responses: accepted, no body."),
            400: Media(
                {**_RPC_ERROR, "text/plain": {"type": "string"}},
                "Malformed JSON-RPC or an unsupported `MCP-Protocol-Version` (a JSON-RPC error), or a Content-Type "
                "other than application/json (plain text).",
            ),
            406: Media(_RPC_ERROR, "`Accept` does not allow application/json."),
        },
        description="The MCP tools (`tools/list`): processes, files, codegen helpers. `initialize` is optional; "
        "there is no `Mcp-Session-Id`.",
        body=Media({"application/json": JsonRpcRequest | list[JsonRpcRequest]}, "A message, or a batch of them."),
    ),
    Operation("GET", "/mcp", get_mcp, "mcp", "Not supported (no SSE)", {405: Failure("Use POST.")}),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
