"""The OpenAPI document is made from the route table, describes exactly the routes the
app serves, is valid, and shows the very shapes validation decodes with.

Rules of the comparison (see sandbox_api/http/openapi.py):
- HEAD routes are not documented (HEAD twins answer an empty 200);
- a route that takes any method (the port proxy) is documented with every method of
  `ANY_METHODS`;
- a prefix route (`PrefixRouter`, matched on the decoded path) at `/p` is documented as
  `/p/{param}`;
- path parameter names do not matter (`/process/{identifier}` == `/process/{id}`).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

import jsonschema
import msgspec
import pytest
from aiohttp import hdrs

from sandbox_api.app import build_app
from sandbox_api.http.openapi import document as make_document
from sandbox_api.http.operations import ANY_METHODS, OPERATIONS, Media
from sandbox_api.http.prefix_routes import PREFIX_ROUTER

OPENAPI_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PARAM = re.compile(r"\{[^}]*\}")


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def served_routes(app) -> set[tuple[str, str]]:
    """(method, path shape) of every route the app answers, HEAD left out."""
    routes: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        assert path, f"unexpected resource {resource!r}"
        for route in resource:
            if route.method == hdrs.METH_HEAD:
                continue
            methods = ANY_METHODS if route.method == hdrs.METH_ANY else (route.method.lower(),)
            routes.update((m, _shape(path)) for m in methods)
    for prefix_route in app[PREFIX_ROUTER].routes():
        routes.add((prefix_route.method.lower(), prefix_route.prefix + "/{}"))
    return routes


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, _shape(path)) for path, item in doc["paths"].items() for method in item if method in OPENAPI_METHODS
    }


_STATE = tempfile.TemporaryDirectory(prefix="openapi-test-")  # removed when the test process ends


@cache
def _app_and_document(terminal: bool = True) -> tuple[Any, dict[str, Any]]:
    from pathlib import Path

    from sandbox_api import config

    state = Path(_STATE.name)  # the app is built, never started: nothing is written there
    settings = replace(config.from_environment(), state_dir=state, workdir="/", disable_terminal=not terminal)
    app = build_app(settings)
    return app, make_document(app[OPERATIONS])


def document() -> dict[str, Any]:
    return _app_and_document()[1]


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "no-terminal"])
def test_every_served_route_is_documented_and_every_documented_route_served(terminal):
    app, doc = _app_and_document(terminal)
    served, documented = served_routes(app), documented_routes(doc)
    assert not served - documented, f"routes served without documentation: {sorted(served - documented)}"
    assert not documented - served, f"documented routes the app does not serve: {sorted(documented - served)}"
    assert any(path.startswith("/terminal") for _, path in documented) == terminal


def test_the_request_shapes_in_the_document_are_the_ones_validation_decodes_with():
    """One object, not two copies: each operation's body and query in the document are
    made from the types its handler decodes with (the table holds those types)."""
    app, doc = _app_and_document()
    checked = 0
    for op in app[OPERATIONS]:
        documented = doc["paths"][op.path.replace("*}", "}")][op.method.lower() if op.method != "*" else "get"]
        if op.body is not None and not isinstance(op.body, Media):
            ref = documented["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            name = ref.rsplit("/", 1)[1]
            expected = msgspec.json.schema(op.body)["$defs"][op.body.__name__]
            expected_text = json.dumps(expected).replace('"#/$defs/', '"#/components/schemas/')
            assert doc["components"]["schemas"][name] == json.loads(expected_text), op.path
            checked += 1
        if op.query is not None:
            names = {p["name"] for p in documented["parameters"] if p["in"] == "query"}
            assert names == {f.encode_name for f in msgspec.structs.fields(op.query)}, op.path
            checked += 1
    assert checked >= 10


def test_a_body_the_document_refuses_is_refused_by_validation():
    """What the schema says is what decoding does: a few bodies against both."""
    from sandbox_api.contract import decode_body
    from sandbox_api.errors import Invalid
    from sandbox_api.process.wire import ProcessRequest

    doc = document()
    validator = jsonschema.Draft202012Validator(doc["components"]["schemas"]["ProcessRequest"])  # holds no $ref
    for body, valid in (
        ({"command": "true"}, True),
        ({"command": "true", "name": None, "timeout": 0}, True),
        ({"command": ""}, False),
        ({"command": "true", "timeout": -1}, False),
        ({"command": "true", "waitForPorts": [0]}, False),
        ({"command": "true", "waitForPorts": [65536]}, False),
        ({"command": "true", "env": {"A": 1}}, False),
        ({"command": 7}, False),
        ({}, False),
    ):
        assert validator.is_valid(body) == valid, body
        try:
            decode_body(json.dumps(body).encode(), ProcessRequest)
            assert valid, body
        except Invalid as e:
            assert not valid, (body, e.message)
            assert e.message.startswith("invalid request body: ")


def test_the_document_is_valid_openapi():
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    doc = document()
    assert doc["openapi"].startswith("3.1")
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(doc)
    ]
    assert not errors


def _schemas(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Schema Object: under `schema` keys and in components.schemas."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield f"{where}/{key}", value
            elif key == "schemas" and where == "/components":
                for name, schema in value.items():
                    yield f"{where}/schemas/{name}", schema
            else:
                yield from _schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas(value, f"{where}/{i}")


def test_every_schema_is_a_valid_json_schema():
    found = list(_schemas(document()))
    assert len(found) > 50
    for where, schema in found:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            pytest.fail(f"{where}: {e.message}")


def test_every_reference_resolves():
    doc = document()
    text = repr(doc)
    for target in set(re.findall(r"'\$ref': '#/([^']+)'", text)):
        node: Any = doc
        for part in target.split("/"):
            assert isinstance(node, dict) and part in node, f"dangling $ref #/{target}"
            node = node[part]


def test_every_operation_has_a_tag_a_summary_and_a_success_or_error_answer():
    tags = {t["name"] for t in document()["tags"]}
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            assert operation["tags"][0] in tags, (method, path)
            assert operation["summary"], (method, path)
            assert operation["responses"], (method, path)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{([^}]*)\}", path)), (method, path)


def test_only_the_open_paths_are_documented_without_authentication():
    from sandbox_api.http.auth import OPEN_PATHS

    public = {
        path
        for path, item in document()["paths"].items()
        for operation in item.values()
        if operation.get("security") == []
    }
    assert public == OPEN_PATHS


async def test_openapi_json_is_served(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    served = await resp.json()
    assert served["paths"].keys() == document()["paths"].keys()
    assert served["components"] == document()["components"]


async def test_swagger_redirects_to_its_page(client):
    resp = await client.get("/swagger", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/swagger/index.html"


async def test_swagger_page_is_self_contained(client):
    resp = await client.get("/swagger/index.html")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "doc.json" in page
    # Offline: nothing is loaded from elsewhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "import(" not in page


async def test_swagger_doc_json_is_the_document(client):
    resp = await client.get("/swagger/doc.json")
    assert resp.status == 200
    assert await resp.json() == await (await client.get("/openapi.json")).json()
