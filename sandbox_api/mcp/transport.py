"""`POST /mcp`: the official `mcp` SDK, stateless, plain JSON replies, on our aiohttp app.

The SDK's low-level `Server` lists and calls our tools (`tools.py`); its streamable-HTTP
session manager (stateless, JSON responses) is an ASGI callable, driven here by a small
buffered bridge: MCP replies are single JSON documents, and a plain aiohttp response
keeps our header hooks working. Importing `mcp` costs about a second and 40 MB, so it
happens on the first request, not at start-up.

A plain request (one JSON-RPC request other than `initialize`, with the headers a client
sends) takes a shortcut: the SDK's single-exchange driver `serve_one` runs the same
handler chain without the per-request server task, dispatcher and memory streams the
stateless transport builds, which cost about 1 ms a call. Everything else (initialize,
notifications, batches, odd headers or bodies) goes through the SDK transport, which
owns those rules; tests/compat/test_mcp.py checks both paths answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..http.responses import json_response
from .tools import Tool, ToolFailure, Tools, call

log = logging.getLogger("sandbox_api.mcp")

MAX_BODY = 64 * 1024 * 1024
SERVER_NAME = "Sandbox API Server"
SERVER_VERSION = "1.0.0"
GET_ERROR = {"error": "SSE streaming not supported. Please use POST for MCP communication."}


class McpEndpoint:
    """Owns the SDK objects, created on first use and kept for the app's life."""

    def __init__(self, tools: Callable[[], Tools]) -> None:
        self._tools_factory = tools
        self._lock = asyncio.Lock()
        self._asgi: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._exchange: Callable[[web.Request, bytes], Any] | None = None

    async def _ensure(self) -> Any:
        async with self._lock:
            if self._asgi is None:
                self._asgi = await self._start()
        return self._asgi

    async def _start(self) -> Any:
        import jsonschema
        import mcp.types as types
        from mcp.server.lowlevel import NotificationOptions, Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.shared.exceptions import MCPError

        logging.getLogger("mcp").setLevel(logging.WARNING)
        registry: dict[str, tuple[Tool, Any]] = {
            tool.name: (tool, jsonschema.Draft202012Validator(tool.input_schema)) for tool in self._tools_factory().all()
        }
        listed = [
            types.Tool(name=t.name, description=t.description, inputSchema=t.input_schema, outputSchema=t.output_schema)
            for t, _ in registry.values()
        ]

        def failure(message: str) -> types.CallToolResult:
            return types.CallToolResult(content=[types.TextContent(type="text", text=message)], isError=True)

        async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            return types.ListToolsResult(tools=listed)

        async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            entry = registry.get(params.name)
            if entry is None:  # a protocol error, as go-sdk answers
                raise MCPError(code=-32602, message=f'unknown tool "{params.name}"')
            tool, validator = entry
            arguments = params.arguments or {}
            error = next(iter(validator.iter_errors(arguments)), None)
            if error is not None:
                return failure(f'validating "arguments": {error.message}')
            try:
                output = await call(tool, arguments)
            except ToolFailure as e:
                return failure(str(e) or "tool failed")
            except Exception as e:  # a bug in a tool must not become a protocol error
                log.exception("MCP tool %s failed", tool.name)
                return failure(f"{type(e).__name__}: {e}")
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=json.dumps(output, ensure_ascii=False))],
                structuredContent=output,
            )

        async def on_empty_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
            return types.ListResourcesResult(resources=[])

        async def on_empty_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
            return types.ListResourceTemplatesResult(resourceTemplates=[])

        async def on_empty_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
            return types.ListPromptsResult(prompts=[])

        class SandboxServer(Server):
            # Stateless requests build their initialization options anew each time:
            # advertise tools.listChanged as the original does.
            def create_initialization_options(self, notification_options: Any = None, *args: Any, **kwargs: Any) -> Any:
                return super().create_initialization_options(
                    notification_options or NotificationOptions(tools_changed=True), *args, **kwargs
                )

        lifespan_state: dict[str, Any] = {}

        @contextlib.asynccontextmanager
        async def lifespan(server: Any) -> Any:
            yield lifespan_state

        server = SandboxServer(
            SERVER_NAME,
            lifespan=lifespan,
            version=SERVER_VERSION,
            on_list_tools=on_list_tools,
            on_call_tool=on_call_tool,
            on_list_resources=on_empty_resources,
            on_list_resource_templates=on_empty_templates,
            on_list_prompts=on_empty_prompts,
        )
        server.middleware = []  # the default OpenTelemetry span per call: we export no traces
        manager = StreamableHTTPSessionManager(app=server, json_response=True, stateless=True, max_request_body_size=MAX_BODY)
        started = asyncio.Event()

        async def run() -> None:
            # anyio's task group must be entered and left in one task: own it here.
            async with manager.run():
                started.set()
                await self._stop.wait()

        self._exchange = _single_exchange(server, lifespan_state)
        self._runner = asyncio.create_task(run(), name="mcp-session-manager")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if self._runner.done():
            waiter.cancel()
            self._runner.result()
        return manager.handle_request

    async def close(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)

    async def post(self, request: web.Request) -> web.Response:
        asgi = await self._ensure()
        body = await request.read()  # over the app's body limit (MAX_BODY): a 413, from aiohttp
        if self._exchange is not None:
            reply = await self._exchange(request, body)
            if reply is not None:
                return reply
        return await _call_asgi(asgi, request, body)

    async def through_sdk_transport(self, request: web.Request, body: bytes) -> web.Response:
        """The SDK transport alone, without the shortcut (tests compare the two)."""
        return await _call_asgi(await self._ensure(), request, body)


def _single_exchange(server: Any, lifespan_state: dict[str, Any]) -> Callable[[web.Request, bytes], Any]:
    import anyio
    import pydantic_core
    from mcp.server.connection import Connection
    from mcp.server.runner import serve_one
    from mcp.server.streamable_http import check_accept_headers
    from mcp.shared.exceptions import NoBackChannelError
    from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
    from mcp.shared.transport_context import TransportContext
    from mcp_types import (
        DEFAULT_NEGOTIATED_VERSION,
        ErrorData,
        JSONRPCError,
        JSONRPCRequest,
        JSONRPCResponse,
        jsonrpc_message_adapter,
    )
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    # What the stateless transport gives a request: no way back to the client.
    transport_context = TransportContext(kind="streamable-http", can_send_request=False)

    class NoBackChannel:
        """The dispatch context of one stateless POST answered with a single JSON reply."""

        transport = transport_context
        message_metadata = None
        can_send_request = False

        def __init__(self, request_id: Any) -> None:
            self.request_id = request_id
            self.cancel_requested = anyio.Event()

        async def notify(self, method: str, params: Any, opts: Any = None) -> None:
            pass  # a JSON reply has no room for notifications

        async def send_raw_request(self, method: str, params: Any, opts: Any = None) -> dict[str, Any]:
            raise NoBackChannelError(method)

        async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
            pass

    async def exchange(request: web.Request, body: bytes) -> web.Response | None:
        version = request.headers.get("mcp-protocol-version")
        if request.content_type != "application/json" or (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS):
            return None
        if not check_accept_headers(request)[0]:
            return None
        try:
            message = jsonrpc_message_adapter.validate_python(pydantic_core.from_json(body), by_name=False)
        except ValueError:  # pydantic's ValidationError is a ValueError
            return None
        if not isinstance(message, JSONRPCRequest) or message.method == "initialize":
            return None
        connection = Connection.from_envelope(version or DEFAULT_NEGOTIATED_VERSION, None, None)
        try:
            result = await serve_one(
                server, NoBackChannel(message.id), message.method, message.params,
                connection=connection, lifespan_state=lifespan_state,
            )
            reply: Any = JSONRPCResponse(jsonrpc="2.0", id=message.id, result=result)
        except Exception as e:
            error = handler_exception_to_error_data(e)
            if error is None:  # the SDK's dispatcher answers these with code 0 too
                log.exception("MCP %s failed", message.method)
                error = ErrorData(code=0, message=str(e))
            reply = JSONRPCError(jsonrpc="2.0", id=message.id, error=error)
        return web.Response(body=reply.model_dump_json(by_alias=True, exclude_unset=True).encode(), content_type="application/json")

    return exchange


async def _call_asgi(asgi: Any, request: web.Request, body: bytes) -> web.Response:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.rel_url.raw_path.encode(),
        "root_path": "",
        "query_string": request.query_string.encode(),
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": (request.remote or "", 0),
        "server": (request.url.host, request.url.port),
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a live connection: no disconnect
        return {"type": "http.disconnect"}

    status, headers, chunks = 500, [], []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await asgi(scope, receive, send)
    response = web.Response(status=status, body=b"".join(chunks))
    for key, value in headers:
        name = key.decode("latin-1")
        if name.lower() == "content-type":
            response.headers["Content-Type"] = value.decode("latin-1")
        elif name.lower() != "content-length":
            response.headers.add(name, value.decode("latin-1"))
    return response


MCP = web.AppKey("mcp", McpEndpoint)


async def get_mcp(request: web.Request) -> web.Response:
    return json_response(GET_ERROR, status=405)


async def post_mcp(request: web.Request) -> web.Response:
    return await request.app[MCP].post(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/mcp", get_mcp, allow_head=False)
    app.router.add_post("/mcp", post_mcp)
