"""The OpenAPI 3.1 document, built from the route table (`http/operations.py`) and the
wire shapes (`contract.py`): served at `/openapi.json` and `/swagger/doc.json`, rendered
by `/swagger/index.html`.

Left out, as rules rather than entries: HEAD twins (an empty 200 that checks nothing, as
the original) and OPTIONS (204 with the CORS headers, on any path). Unknown routes, and
known paths with a method not served, answer a plain-text `404 page not found`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from .. import __version__
from ..contract import Shape, components, doc
from .operations import ANY_METHODS, Empty, Failure, Media, Operation

Schema = dict[str, Any]


class Error(Shape):
    """Every error but an unknown route's."""

    error: Annotated[str, doc("What went wrong; OS errors read `<op> <path>: <errno text>`.")]
    code: Annotated[str | None, doc("A machine-readable reason, where there is one (`FILE_ALREADY_EXISTS`).")] = None


TAGS = [
    {"name": "system", "description": "Welcome, health, upgrade, environment."},
    {"name": "process", "description": "Run and supervise processes; their output is kept on disk."},
    {"name": "sessions", "description": "Persistent shells: cwd, variables and functions carry over."},
    {"name": "filesystem", "description": "Read, write, list, delete, copy; writes are atomic."},
    {"name": "edit", "description": "Exact edits of text files: view, str-replace, create, insert."},
    {"name": "multipart", "description": "S3-style uploads of large files in parts."},
    {"name": "search", "description": "Find by name, fuzzy search, content search."},
    {"name": "watch", "description": "Streams of filesystem changes."},
    {"name": "network", "description": "Ports of process trees, port callbacks, the WireGuard tunnel."},
    {"name": "codegen", "description": "Model-backed edit merging and file ranking (needs a provider key)."},
    {"name": "drives", "description": "Blaxel drives (blfs)."},
    {"name": "proxy", "description": "Reach an app's port through the daemon."},
    {"name": "mcp", "description": "The same services as MCP tools."},
    {"name": "terminal", "description": "A web terminal."},
    {"name": "docs", "description": "This document and its page."},
]

DESCRIPTION = """\
The daemon inside a Blaxel sandbox: processes, files, search, watch, network, MCP, terminal.

- Errors are JSON `{"error": "..."}`; an unknown route (or a known path with a method not listed
  here) is a plain-text `404 page not found`.
- OPTIONS on any path answers 204 with the CORS headers; most GET routes also answer HEAD with an
  empty 200 that checks nothing (as the original). Neither is listed.
- With `SANDBOX_API_TOKEN` set, every route but `/health` and OPTIONS needs `Authorization: Bearer
  <token>` (or `X-Blaxel-Authorization`); without it there is no authentication.
- File paths in URLs: relative to WORKDIR, or absolute as `//tmp/x` or `%2Ftmp%2Fx`.
"""


class _Shapes:
    """Collects every shape the operations name, to make their schemas in one pass."""

    def __init__(self) -> None:
        self.order: list[Any] = []

    def add(self, shape: Any) -> int:
        if shape not in self.order:
            self.order.append(shape)
        return self.order.index(shape)


def _is_shape(value: Any) -> bool:
    return not isinstance(value, (dict, tuple, Media, Failure, Empty, str))


def document(operations: Iterable[Operation]) -> dict[str, Any]:
    ops = list(operations)
    shapes = _Shapes()
    shapes.add(Error)
    for op in ops:
        for value in _named_shapes(op):
            shapes.add(value)
    schemas, defs = components(shapes.order)

    def schema(value: Any) -> Schema:
        if isinstance(value, tuple):  # one of several shapes (Media content only)
            return {"anyOf": [schema(v) for v in value]}
        return value if isinstance(value, dict) else schemas[shapes.order.index(value)]

    error_ref = schema(Error)
    paths: dict[str, Schema] = {}
    for op in ops:
        item = paths.setdefault(op.path.replace("*}", "}"), {})  # `{path*}`: a tail, named `path`
        built = _operation(op, schema, error_ref)
        if op.method != "*":
            item[op.method.lower()] = built
            continue
        for method in ANY_METHODS:  # operationIds are unique: one per method
            item[method] = {**built, "operationId": method + built["operationId"].removeprefix("any")}
    used_tags = {op.tag for op in ops}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sandbox-api",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [t for t in TAGS if t["name"] in used_tags],
        "security": [{}, {"bearerAuth": []}, {"blaxelAuthorization": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(defs.items())),
            "responses": {
                "Unauthorized": {
                    "description": "A token is configured and the request lacks it.",
                    "content": {"application/json": {"schema": error_ref}},
                }
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "blaxelAuthorization": {"type": "apiKey", "in": "header", "name": "X-Blaxel-Authorization"},
            },
        },
    }


def _named_shapes(op: Operation) -> Iterable[Any]:
    answers = [op.body, *op.responses.values()]
    for answer in answers:
        if isinstance(answer, Media):
            for value in answer.content.values():
                yield from (v for v in (value if isinstance(value, tuple) else (value,)) if _is_shape(v))
        elif answer is not None and _is_shape(answer):
            yield answer


def _operation(op: Operation, schema: Any, error_ref: Schema) -> Schema:
    built: Schema = {"tags": [op.tag], "summary": op.summary, "operationId": _operation_id(op)}
    if op.description:
        built["description"] = op.description
    parameters = [
        {
            "name": p.name,
            "in": p.location,
            "required": p.location == "path",
            "description": p.description,
            "schema": p.schema,
        }
        for p in op.params
    ]
    if op.query is not None:
        parameters += _query_params(op.query)
    if parameters:
        built["parameters"] = parameters
    if op.body is not None:
        if isinstance(op.body, Media):
            content = {media: {"schema": schema(s)} for media, s in op.body.content.items()}
            built["requestBody"] = {"required": op.body_required, "content": content}
            if op.body.description:
                built["requestBody"]["description"] = op.body.description
        else:
            built["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": schema(op.body)}},
            }
    responses: Schema = {}
    for status, answer in op.responses.items():
        if isinstance(answer, Failure):
            responses[str(status)] = {
                "description": answer.description,
                "content": {"application/json": {"schema": error_ref}},
            }
        elif isinstance(answer, Empty):
            responses[str(status)] = {"description": answer.description}
        elif isinstance(answer, Media):
            responses[str(status)] = {
                "description": answer.description or "OK",
                "content": {media: {"schema": schema(s)} for media, s in answer.content.items()},
            }
        else:
            responses[str(status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": schema(answer)}},
            }
    if op.public:
        built["security"] = []
    else:
        responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    built["responses"] = responses
    return built


def _query_params(shape: type) -> list[Schema]:
    """Each field of a query shape as a parameter (a query value is never null)."""
    root = msgspec.json.schema(shape)
    body = root["$defs"][root["$ref"].rsplit("/", 1)[1]]
    params = []
    for name, field_schema in body.get("properties", {}).items():
        field_schema = dict(field_schema)
        description = field_schema.pop("description", "")
        options = field_schema.pop("anyOf", None)
        if options:
            real = [o for o in options if o != {"type": "null"}]
            description = description or real[0].pop("description", "")
            field_schema = {**real[0], **field_schema}
        if field_schema.get("default", 0) is None:
            del field_schema["default"]
        param: Schema = {"name": name, "in": "query", "schema": field_schema}
        if field_schema.get("type") == "array":  # decode_query splits one comma-separated value
            param.update(style="form", explode=False)
        if description:
            param["description"] = description
        if name in body.get("required", ()):
            param["required"] = True
        params.append(param)
    return params


def _operation_id(op: Operation) -> str:
    words = [w.strip("{}*") for w in op.path.split("/") if w]
    method = "any" if op.method == "*" else op.method.lower()
    return method + "".join(w[:1].upper() + w[1:] for w in "-".join(words).replace("-", "/").split("/") if w)


def document_json(operations: Iterable[Operation]) -> bytes:
    return json.dumps(document(operations), ensure_ascii=False, separators=(",", ":")).encode()
