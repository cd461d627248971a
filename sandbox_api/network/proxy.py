"""`/port/{n}/...`: a reverse proxy to `http://127.0.0.1:{n}/...`.

In Blaxel's cloud an edge proxy answers these paths; the SDK's `sandbox.fetch(port, path)`
and its code interpreter (`/port/8888/execute`) rely on it, so a local daemon serves them
too. Bodies stream both ways chunk by chunk and are never buffered whole; upstream bodies
are relayed undecoded, so Content-Encoding passes through intact. A websocket upgrade is
relayed message by message. HTTP through and through, so service and handler live here.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http import WSCloseCode, WSMsgType
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..errors import ApiError, BadGateway, GatewayTimeout, Invalid, LoopDetected, ServiceUnavailable
from ..http import operations, streams
from ..http.appkeys import SETTINGS
from ..http.headers import RELAYED
from ..http.operations import Empty, Failure, Operation, Param

UPSTREAM_HOST = "127.0.0.1"
CONNECT_TIMEOUT_SECONDS = 10.0
# Node closes idle keep-alive connections after 5 s: we drop ours first, so a request
# (a POST cannot be retried) never lands on a connection the upstream is closing.
UPSTREAM_KEEPALIVE_SECONDS = 4.0
UPSTREAM_MAX_HEADER_BYTES = 1024 * 1024  # as much as we accept from clients
WEBSOCKET_CLOSE_GRACE_SECONDS = 5.0
CLIENT_CHECK_SECONDS = 15.0
# Each relayed request holds two sockets (client and upstream) for as long as it runs:
# past this many at once, more are refused (503) rather than exhausting the fd limit.
MAX_RELAYS = 1024
# What no response header may hold (RFC 9110 5.5): our server refuses to send it.
HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9110 7.6.1: these describe one connection, not the message, so they stop here in
# both directions (as do the Proxy-* family and whatever Connection itself names).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})
# Request headers that are ours rather than the upstream's: Host is rewritten, Expect was
# answered by our server, and the SDK's credential is for this API, not for the user's app.
NOT_FORWARDED = frozenset({"host", "expect", "x-blaxel-authorization"})
# aiohttp's client writes its own handshake; the offered subprotocols are passed on apart.
WEBSOCKET_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
# Close codes a peer may not put on the wire (RFC 6455 7.4.1): reserved or local-only.
UNSENDABLE_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})


class PortProxy:
    """Forwards requests to loopback ports over one client session shared by the app."""

    def __init__(
        self, connect_timeout: float = CONNECT_TIMEOUT_SECONDS, client_check_seconds: float = CLIENT_CHECK_SECONDS
    ) -> None:
        self.connect_timeout = connect_timeout
        self.client_check_seconds = client_check_seconds
        self._session: aiohttp.ClientSession | None = None
        self.active = 0  # relays running now
        self.max_relays = MAX_RELAYS
        # Our name in the Via header of what we forward: met again on a request we receive,
        # it means the request went round a loop back to us (through another port's proxy).
        self.via_name = f"sandbox-api-{secrets.token_hex(6)}"

    def session(self) -> aiohttp.ClientSession:
        # Created on first use: most sandboxes never proxy, and idle memory matters.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # Each proxied request already holds a client connection: no second cap.
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS),
                # Only connecting is timed: streams and long polls may run for hours.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies are the clients', not ours to keep
                # Forward what the client sent, and only that.
                skip_auto_headers=(hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE),
                max_line_size=UPSTREAM_MAX_HEADER_BYTES,
                max_field_size=UPSTREAM_MAX_HEADER_BYTES,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


PORT_PROXY = web.AppKey("port_proxy", PortProxy)


def parse_port(text: str) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535:
        return int(text)
    raise Invalid(f"invalid port {text!r}: must be an integer from 1 to 65535")


def upstream_url(port: int, request: web.Request) -> URL:
    """The upstream URL: what follows `/port/{n}`, still encoded (`%2F` stays `%2F`)."""
    # Split off two segments rather than a literal prefix: `/%70ort/80` matches the route too.
    segments = request.rel_url.raw_path.split("/", 3)  # "", "port", "{n}", rest
    return URL.build(
        scheme="http",
        host=UPSTREAM_HOST,
        port=port,
        path="/" + (segments[3] if len(segments) > 3 else ""),
        query_string=request.rel_url.raw_query_string,
        encoded=True,
    )


def _connection_scoped(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    named = {token.strip().lower() for value in headers.getall(hdrs.CONNECTION, []) for token in value.split(",")}
    return HOP_BY_HOP | named


def _end_to_end(headers: CIMultiDictProxy[str], drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    scoped = _connection_scoped(headers) | drop
    return CIMultiDict(
        (name, value)
        for name, value in headers.items()
        if name.lower() not in scoped and not name.lower().startswith("proxy-")
    )


def request_headers(
    request: web.Request, *, websocket: bool = False, token: str = "", via_name: str = ""
) -> CIMultiDict[str]:
    """The client's end-to-end headers plus X-Forwarded-* and Via; Host becomes the
    upstream's. The daemon's own credential is not the app's to see: X-Blaxel-Authorization
    always stops here, and Authorization when it carries the daemon's token."""
    headers = _end_to_end(request.headers, NOT_FORWARDED | (WEBSOCKET_HANDSHAKE if websocket else frozenset()))
    if token:
        kept = [v for v in headers.popall(hdrs.AUTHORIZATION, []) if not _carries_token(v, token)]
        for value in kept:
            headers.add(hdrs.AUTHORIZATION, value)
    if via_name:
        headers[hdrs.VIA] = ", ".join([*request.headers.getall(hdrs.VIA, []), f"1.1 {via_name}"])
    chain = [*request.headers.getall("X-Forwarded-For", []), request.remote or ""]
    headers["X-Forwarded-For"] = ", ".join(hop for hop in chain if hop)
    # A proxy in front of us (Blaxel's gateway) knows the original scheme and host better.
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    if hdrs.HOST in request.headers:
        headers.setdefault("X-Forwarded-Host", request.headers[hdrs.HOST])
    return headers


def _carries_token(value: str, token: str) -> bool:
    scheme, _, credentials = value.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
    )


def _own_ports(request: web.Request) -> set[int]:
    """The port this request reached us on, and the one we were told to listen on."""
    ports = {request.app[SETTINGS].port} if SETTINGS in request.app else set()
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        ports.add(sockname[1])
    ports.discard(0)
    return ports


def _check_no_loop(request: web.Request, proxy: PortProxy, port: int) -> None:
    if port in _own_ports(request):
        raise LoopDetected(f"port {port} is this server: /port/{port}/... would loop back into it")
    for value in request.headers.getall(hdrs.VIA, []):
        if proxy.via_name in value:
            raise LoopDetected(
                f"loop detected: this request already went through this server's /port proxy (Via: {value})"
            )


def _response_headers(port: int, headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream's end-to-end response headers; BadGateway if one cannot be sent on."""
    relayed = _end_to_end(headers)
    for name, value in relayed.items():
        if HEADER_CONTROL.search(name) or HEADER_CONTROL.search(value):
            raise BadGateway(f"port {port} sent an invalid response: header {name!r} holds a control character")
    return relayed


def _gateway_error(port: int, proxy: PortProxy, error: Exception) -> ApiError:
    if isinstance(error, asyncio.TimeoutError):  # aiohttp's ConnectionTimeoutError is one
        return GatewayTimeout(f"port {port} did not accept a connection within {proxy.connect_timeout:g}s")
    if isinstance(error, aiohttp.ClientConnectorError) and isinstance(error.os_error, ConnectionRefusedError):
        return BadGateway(f"nothing is listening on port {port}")
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return BadGateway(f"port {port} closed the connection without answering")
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return BadGateway(f"port {port} declined the websocket upgrade (HTTP {error.status})")
    if isinstance(error, aiohttp.ClientResponseError):
        return BadGateway(f"port {port} sent an invalid response: {error.message}")
    return BadGateway(f"port {port} could not be reached: {error}")


async def forward(request: web.Request) -> web.StreamResponse:
    port = parse_port(request.match_info["port"])
    proxy = request.app[PORT_PROXY]
    _check_no_loop(request, proxy, port)
    if proxy.active >= proxy.max_relays:
        raise ServiceUnavailable(f"too many proxied requests at once ({proxy.max_relays}); try again later")
    target = upstream_url(port, request)
    proxy.active += 1
    try:
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return await _relay_websocket(request, proxy, port, target)
        return await _relay_http(request, proxy, port, target)
    finally:
        proxy.active -= 1


def _forwarded_headers(request: web.Request, proxy: PortProxy, *, websocket: bool = False) -> CIMultiDict[str]:
    token = request.app[SETTINGS].auth_token if SETTINGS in request.app else ""
    return request_headers(request, websocket=websocket, token=token, via_name=proxy.via_name)


async def _relay_http(request: web.Request, proxy: PortProxy, port: int, target: URL) -> web.StreamResponse:
    try:
        upstream = await proxy.session().request(
            request.method,
            target,
            headers=_forwarded_headers(request, proxy),
            data=request.content if request.body_exists else None,  # streamed, never read whole
            allow_redirects=False,
        )
    except (TimeoutError, aiohttp.ClientError) as e:
        raise _gateway_error(port, proxy, e) from None
    async with upstream:
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=_response_headers(port, upstream.headers)
        )
        request[RELAYED] = True
        await response.prepare(request)
        # aiohttp does not cancel a handler whose client left: a quiet upstream (an event
        # stream between events) is dropped once the client is seen gone.
        gone = streams.disconnected(request, proxy.client_check_seconds)

        def close_upstream(f: asyncio.Future[None]) -> None:
            if not f.cancelled():
                upstream.close()

        gone.add_done_callback(close_upstream)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            if gone.done():
                raise ConnectionResetError("the client left")
            await response.write_eof()  # here rather than after us: the access log sees the size
        except (aiohttp.ClientError, ConnectionResetError):
            # One side broke off mid-body. Our headers are out, so the one honest signal
            # left is an aborted connection, not a clean end taken for the whole body.
            if request.transport is not None:
                request.transport.close()
        finally:
            gone.cancel()
        return response


async def _relay_websocket(request: web.Request, proxy: PortProxy, port: int, target: URL) -> web.StreamResponse:
    offered = [p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",") if p.strip()]
    try:
        # Upstream first: if nothing is there, the client gets a plain 502, not a dead socket.
        upstream = await proxy.session().ws_connect(
            target, protocols=offered, headers=_forwarded_headers(request, proxy, websocket=True), max_msg_size=0
        )
    except (TimeoutError, aiohttp.ClientError) as e:
        raise _gateway_error(port, proxy, e) from None
    client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else [], max_msg_size=0)
    pumps: list[asyncio.Task[None]] = []
    try:
        request[RELAYED] = True
        await client.prepare(request)
        pumps = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        # One side is closing: the pump still running may be passing its close code on.
        await asyncio.wait(pending, timeout=WEBSOCKET_CLOSE_GRACE_SECONDS)
        return client
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        # However the relay ended (a close, a lost connection, our shutdown cancelling
        # this handler), each side hears the other's close code, or "going away".
        to_upstream, to_client = _repeatable(client.close_code), _repeatable(upstream.close_code)
        await upstream.close(code=to_upstream)
        if client.prepared:
            await client.close(code=to_client)


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Copy messages from `source` to `sink` until `source` closes; then close `sink` alike."""
    while True:
        # Pings are answered by aiohttp itself (autoping); anything else but data ends it.
        message = await source.receive()
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break
    reason = message.extra if message.type is WSMsgType.CLOSE and isinstance(message.extra, str) else ""
    await sink.close(code=_repeatable(source.close_code), message=reason.encode())


def _repeatable(code: int | None) -> int:
    """`code` if a peer may send it on; otherwise "going away" (we are, on its behalf)."""
    if code is None or code in UNSENDABLE_CLOSE_CODES or not 1000 <= code <= 4999:
        return WSCloseCode.GOING_AWAY
    return code


async def _close_session(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[PORT_PROXY].close()


PORT = Param("port", "A local port.", {"type": "integer", "minimum": 1, "maximum": 65535})
RELAYED_ANSWERS: dict[int | str, Any] = {
    "default": Empty("Whatever the app on that port answers, relayed (bodies streamed both ways)."),
    400: Failure("Invalid port."),
    502: Failure("Nothing is listening on that port, or it answered badly."),
    503: Failure("Too many proxied requests at once."),
    504: Failure("Connecting timed out."),
    508: Failure("The port is this server: the request would loop back into it."),
}


def _forwarding(path: str, params: tuple[Param, ...]) -> Operation:
    return Operation(
        "*",
        path,
        forward,
        "proxy",
        "Reverse proxy to http://127.0.0.1:{port}/",
        RELAYED_ANSWERS,
        description="Any method, WebSocket upgrades included; OPTIONS goes to the app.",
        params=params,
    )


# Every method, OPTIONS included: see http/cors.py.
OPERATIONS = (
    _forwarding("/port/{port}", (PORT,)),
    _forwarding("/port/{port}/{path*}", (PORT, Param("path", "The rest of the URL, sent to the app."))),
)


def add_routes(app: web.Application) -> None:
    app[PORT_PROXY] = PortProxy()
    app.cleanup_ctx.append(_close_session)
    operations.register(app, OPERATIONS)
