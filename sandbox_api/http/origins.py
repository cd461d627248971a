"""What a web page in a browser may do with the API: DNS rebinding and cross-site requests.

A browser sends some requests to any site without asking it first (a form post, a
`fetch` with a text/plain body, a WebSocket handshake): a page on evil.example could
start processes on a daemon at localhost:8080. These rules stop it, before anything else
(the CORS preflight answer included):

1. Host (DNS rebinding): a request that reached us on a loopback address must name a
   loopback host (`localhost`, `*.localhost`, an IP literal) in `Host`, with or without
   a port; else 403. A rebinding page reaches 127.0.0.1 under its own DNS name. Requests
   from other addresses (Blaxel's gateway, with the sandbox's public name) are not checked.
2. Cross-site: a request whose `Origin` is not ours (ours: `Origin` names the `Host` or
   `X-Forwarded-Host` the request was sent to, or is listed in SANDBOX_ALLOWED_ORIGINS),
   or that has no Origin but says `Sec-Fetch-Site: cross-site`/`same-site`, is served
   only if a browser could have sent it only after a CORS preflight: a method other than
   GET/HEAD/POST, a Content-Type other than the three a form can send (text/plain,
   application/x-www-form-urlencoded, multipart/form-data; none counts as one of them),
   an `Authorization: Bearer` header, or any `X-*` header. Otherwise a state-changing
   request (not GET/HEAD/OPTIONS) is refused 403, and a read is served without CORS
   headers, so that the page cannot read the answer. A WebSocket upgrade from a foreign
   origin is refused 403 (a browser never preflights one).
3. On a loopback connection to a daemon without a token, a foreign origin whose host is
   not a loopback name is refused 403 whatever it sends, its preflight (OPTIONS) included:
   our CORS answer grants every origin, so a preflight alone would let any site in. Pages
   served from this machine (http://localhost:3000) keep rules 1-2.
Clients that are not browsers send no Origin and are not affected. `/port/{n}/...` is
exempt from rules 2 and 3: what crosses it is the proxied app's business and its CORS policy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from yarl import URL

from .cors import is_relay_route
from .responses import error_body, json_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIMPLE_METHODS = frozenset({"GET", "HEAD", "POST"})
# The media types a browser sends cross-site without a preflight (Fetch: CORS-safelisted).
SIMPLE_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})  # same-site: a sibling sandbox's subdomain
ANY = "*"
# Set on a read served to a foreign page that did not pass a preflight: no CORS headers on it.
CROSS_SITE_UNREADABLE = web.RequestKey("cross_site_unreadable", bool)


def split_host(value: str) -> tuple[str, int | None] | None:
    """`Host` as (lower-case name without brackets, port or None); None when malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text = value.rpartition(":")
        if not sep:
            name, port_text = value, None
    port: int | None = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
            return None
        port = int(port_text)
    if not name:
        return None
    return name.lower().rstrip("."), port


def is_loopback_connection(request: web.Request) -> bool:
    """Whether the connection arrived on a loopback address of ours."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple) or not sockname:
        return False  # a Unix socket, or a connection already gone
    return _loopback_address(str(sockname[0]))


@functools.lru_cache(maxsize=64)  # a daemon has few local addresses: parsed once each
def _loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # browsers resolve these themselves
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True  # an address typed as such: rebinding needs a DNS name


def _same_authority(origin: URL, host_value: str) -> bool:
    parsed = split_host(host_value)
    if parsed is None or origin.host is None:
        return False
    name, port = parsed
    # No port in Host: whatever the scheme's default is, as the browser saw it.
    return origin.host.lower().rstrip(".") == name and (port is None or port == origin.port)


class BrowserGuard:
    """Rules 1 and 2 above, with the allowances from the settings."""

    def __init__(
        self, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = (), token_required: bool = False
    ) -> None:
        self.token_required = token_required
        self.allowed_hosts = frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip())
        self.allowed_origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins if o.strip())

    def host_allowed(self, request: web.Request) -> bool:
        if ANY in self.allowed_hosts or not is_loopback_connection(request):
            return True
        value = request.headers.get(hdrs.HOST)
        if value is None:
            return True  # HTTP/1.0 without Host: not a browser
        return self._host_value_allowed(value)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - the guard lives as long as the app; bounded
    def _host_value_allowed(self, value: str) -> bool:
        parsed = split_host(value)
        if parsed is None:
            return False
        return _loopback_name(parsed[0]) or parsed[0] in self.allowed_hosts

    def foreign_origin(self, request: web.Request) -> str | None:
        """The origin of a foreign page that sent this request, or None (ours, or no browser)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
            return f"(a {site} page)" if site in FOREIGN_FETCH_SITES else None
        if ANY in self.allowed_origins or origin.strip().rstrip("/").lower() in self.allowed_origins:
            return None
        try:
            url = URL(origin.strip())
        except ValueError:
            return origin
        if url.scheme not in ("http", "https") or not url.host:
            return origin  # "null" (a sandboxed frame, a file), or junk
        forwarded = request.headers.get("X-Forwarded-Host", "").split(",", 1)[0]
        for value in (request.headers.get(hdrs.HOST, ""), forwarded):
            if value and _same_authority(url, value):
                return None
        return origin

    def middleware(self):
        @web.middleware
        async def browser_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            refusal = self.refusal(request)
            if refusal is not None:
                request[CROSS_SITE_UNREADABLE] = True
                return json_response(error_body(refusal), status=403)
            return await handler(request)

        return browser_guard_middleware

    def refusal(self, request: web.Request) -> str | None:
        """Why the request is refused, or None; marks a read a foreign page may not see."""
        if not self.host_allowed(request):
            return (
                f"host {request.headers.get(hdrs.HOST, '')!r} refused on a loopback connection (DNS rebinding "
                "protection): use localhost or 127.0.0.1, or list the name in SANDBOX_ALLOWED_HOSTS"
            )
        origin = self.foreign_origin(request)
        if origin is None or is_relay_route(request):
            return None
        if not self.token_required and is_loopback_connection(request) and not _loopback_origin(origin):
            # A tokenless daemon reached on this machine: a remote site's page gets nothing,
            # preflight or not (its preflight is refused too, so the browser sends nothing).
            return (
                f"cross-site request refused: origin {origin!r} is not this server's and no token is configured; "
                "list it in SANDBOX_ALLOWED_ORIGINS or configure a token"
            )
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return f"cross-site WebSocket refused: origin {origin!r} is not this server's"
        if not preflighted(request):
            request[CROSS_SITE_UNREADABLE] = True
            if request.method not in SAFE_METHODS:
                return (
                    f"cross-site request refused: a {request.method} from origin {origin!r} must be one that a "
                    "browser sends only after a CORS preflight (Content-Type: application/json, an "
                    "Authorization: Bearer header or an X-* header)"
                )
        return None


def _loopback_origin(origin: str) -> bool:
    """Whether a page of this machine (http://localhost:3000...) sent it."""
    try:
        host = URL(origin.strip()).host
    except ValueError:
        return False
    return host is not None and _loopback_name(host.lower().rstrip("."))


def preflighted(request: web.Request) -> bool:
    """Whether a browser would have sent this request only after a CORS preflight."""
    if request.method not in SIMPLE_METHODS:
        return True
    content_type = request.headers.get(hdrs.CONTENT_TYPE)
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() not in SIMPLE_CONTENT_TYPES:
        return True
    for name, value in request.headers.items():
        lower = name.lower()
        if lower.startswith("x-"):
            return True
        # Basic credentials a browser may attach by itself; a bearer token only a script adds.
        if lower == "authorization" and value.lstrip().lower().startswith("bearer "):
            return True
    return False
