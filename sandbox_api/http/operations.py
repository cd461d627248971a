"""The route table: each HTTP operation declared once, with its shapes.

A routes module lists its `Operation`s and `register` adds them to the app; the same
records build `/openapi.json` (`http/openapi.py`), so a route cannot be served without
being documented, and the body and query shapes the document shows are the very types
the handlers decode with (`body`, `query` below).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import hdrs, web

from ..contract import decode_body, decode_query
from .prefix_routes import PrefixRouter
from .responses import head_ok

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]
T = TypeVar("T")

# The methods a route that takes any method is documented with (the port proxy).
ANY_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


@dataclass(frozen=True)
class Param:
    """A path parameter (or, with `location="header"`, an optional request header)."""

    name: str
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    location: Literal["path", "header"] = "path"


@dataclass(frozen=True)
class Media:
    """A body or an answer by content type: each a shape (a type), a tuple of shapes (any
    one of them) or a JSON Schema dict."""

    content: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Failure:
    """An error answer: `{"error": "..."}` for the reason given."""

    description: str


@dataclass(frozen=True)
class Empty:
    """An answer without a body (101, 202, 204)."""

    description: str


Answer = Any  # a shape (type), Media, Failure or Empty


@dataclass(frozen=True)
class Operation:
    method: str  # "*": any method (documented with ANY_METHODS)
    path: str  # OpenAPI form: `/process/{identifier}`
    handler: Handler
    tag: str
    summary: str
    responses: Mapping[Any, Answer]  # status (or "default") -> answer
    description: str = ""
    params: tuple[Param, ...] = ()
    query: type | None = None  # a Struct: each field is a query parameter
    body: Any = None  # a shape for a JSON body, or Media
    body_required: bool = True
    # HEAD: "ok" adds a twin answering an empty 200 (as the original), "same" lets the
    # handler answer it; None: no HEAD.
    head: Literal["ok", "same"] | None = None
    public: bool = False  # no token needed
    # Matched on the decoded path by the PrefixRouter: `path` ends with `/{<tail>}`.
    prefix: bool = False


OPERATIONS = web.AppKey("operations", list[Operation])


def register(app: web.Application, operations: tuple[Operation, ...], prefixes: PrefixRouter | None = None) -> None:
    """Serve `operations` and record them for the document."""
    table = app.setdefault(OPERATIONS, [])
    router = app.router
    for op in operations:
        table.append(op)
        if op.prefix:
            if prefixes is None:
                raise ValueError(f"{op.path}: a prefix route needs the prefix router")
            prefixes.add(op.method, op.path.rsplit("/", 1)[0], op.handler)
            continue
        path = _aiohttp_path(op.path)
        if op.method == "*":
            router.add_route(hdrs.METH_ANY, path, op.handler)
        elif op.method == "GET" and op.head == "same":
            router.add_get(path, op.handler)
        else:
            router.add_route(op.method, path, op.handler)
            if op.head == "ok":
                router.add_route("HEAD", path, head_ok)


def _aiohttp_path(path: str) -> str:
    """OpenAPI's `{name}` is aiohttp's; `{name*}` (a tail with slashes) is `{name:.*}`."""
    return path.replace("*}", ":.*}")


async def body(request: web.Request, shape: type[T]) -> T:
    """The request's JSON body as `shape` (400 `invalid request body: ...` otherwise)."""
    return decode_body(await request.read(), shape)


def query(request: web.Request, shape: type[T]) -> T:
    """The request's query parameters as `shape`."""
    return decode_query(request.query, shape)
